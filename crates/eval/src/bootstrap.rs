//! Paired bootstrap confidence intervals for the difference of two models' mean scores on the
//! same questions: resample questions with replacement, recompute the mean difference, take
//! percentiles. Seeded, so a report is reproducible.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Bootstrap settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    pub resamples: usize,
    /// Two-sided coverage, e.g. 0.95.
    pub confidence: f64,
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 2000,
            confidence: 0.95,
            seed: 42,
        }
    }
}

/// Mean of `other - reference` over paired questions with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeltaInterval {
    pub delta: f64,
    pub low: f64,
    pub high: f64,
    /// Questions paired.
    pub n: usize,
}

impl DeltaInterval {
    /// The interval excludes zero.
    pub fn significant(&self) -> bool {
        self.n > 1 && (self.low > 0.0 || self.high < 0.0)
    }
}

/// Paired bootstrap of `mean(other[i] - reference[i])`. Pairs where either side is `None` are
/// left out. Returns `None` when nothing is paired.
pub fn paired_delta(
    reference: &[Option<f64>],
    other: &[Option<f64>],
    config: &BootstrapConfig,
) -> Option<DeltaInterval> {
    let diffs: Vec<f64> = reference
        .iter()
        .zip(other)
        .filter_map(|(r, o)| Some((*o)? - (*r)?))
        .collect();
    if diffs.is_empty() {
        return None;
    }
    let n = diffs.len();
    let mean = diffs.iter().sum::<f64>() / n as f64;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut means: Vec<f64> = (0..config.resamples.max(1))
        .map(|_| (0..n).map(|_| diffs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - config.confidence) / 2.0;
    Some(DeltaInterval {
        delta: mean,
        low: quantile(&means, alpha),
        high: quantile(&means, 1.0 - alpha),
        n,
    })
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().copied().map(Some).collect()
    }

    #[test]
    fn constant_shift_has_a_point_interval() {
        let r = some(&[1.0, 2.0, 3.0, 4.0]);
        let o = some(&[1.5, 2.5, 3.5, 4.5]);
        let d = paired_delta(&r, &o, &BootstrapConfig::default()).unwrap();
        assert!((d.delta - 0.5).abs() < 1e-12);
        assert!((d.low - 0.5).abs() < 1e-12 && (d.high - 0.5).abs() < 1e-12);
        assert!(d.significant());
    }

    #[test]
    fn interval_brackets_the_mean_and_is_reproducible() {
        let r = some(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let o = some(&[1.0, -1.0, 0.5, 0.0, 2.0, -0.5]);
        let c = BootstrapConfig::default();
        let a = paired_delta(&r, &o, &c).unwrap();
        let b = paired_delta(&r, &o, &c).unwrap();
        assert_eq!(a, b);
        assert!(a.low <= a.delta && a.delta <= a.high);
        assert!(a.low < 0.0 && a.high > 0.0 && !a.significant());
    }

    #[test]
    fn unpaired_values_are_left_out() {
        let r = vec![Some(1.0), None, Some(0.0)];
        let o = vec![Some(0.0), Some(5.0), None];
        let d = paired_delta(&r, &o, &BootstrapConfig::default()).unwrap();
        assert_eq!(d.n, 1);
        assert_eq!(d.delta, -1.0);
        assert!(paired_delta(&[None], &[Some(1.0)], &BootstrapConfig::default()).is_none());
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(&[0.0, 10.0], 0.25), 2.5);
        assert_eq!(quantile(&[3.0], 0.9), 3.0);
    }
}
