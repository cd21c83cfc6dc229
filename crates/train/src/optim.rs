//! The optimizer step: gradient accumulation across micro-batches, global-norm clipping,
//! warmup + cosine learning rate, and AdamW.
//!
//! AdamW is written here rather than taken from candle-nn because candle-nn's keeps its moment
//! estimates private, and resumable checkpoints must save and restore them.

use std::collections::HashMap;

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// Linear warmup to `peak`, then cosine decay to `peak · min_ratio` at `total` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    pub min_ratio: f64,
}

impl Schedule {
    /// Learning rate of optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let min = self.peak * self.min_ratio;
        min + (self.peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Sums the trainable variables' gradients over micro-batches. Only the variables' gradients
/// are kept: a `GradStore` also holds every activation's gradient.
pub struct GradAccum {
    sums: Vec<Option<Tensor>>,
}

impl GradAccum {
    pub fn new(n: usize) -> Self {
        GradAccum {
            sums: vec![None; n],
        }
    }

    pub fn add(&mut self, vars: &[(String, Var)], store: &GradStore) -> Result<()> {
        for ((_, var), sum) in vars.iter().zip(self.sums.iter_mut()) {
            if let Some(g) = store.get(var.as_tensor()) {
                let g = g.detach();
                *sum = Some(match sum.take() {
                    None => g,
                    Some(s) => (s + g)?,
                });
            }
        }
        Ok(())
    }

    /// The summed gradients (zeros for a variable that got none), leaving the sums empty.
    pub fn take(&mut self, vars: &[(String, Var)]) -> Result<Vec<Tensor>> {
        vars.iter()
            .zip(self.sums.iter_mut())
            .map(|((_, v), s)| match s.take() {
                Some(g) => Ok(g),
                None => Ok(v.as_tensor().zeros_like()?),
            })
            .collect()
    }
}

/// Global L2 norm of `grads`; when above `max_norm` (> 0) they are scaled down to it.
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter() {
        sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let k = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * k)?;
        }
    }
    Ok(norm)
}

/// AdamW (decoupled weight decay) with bias correction.
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimizer steps taken.
    pub steps: usize,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(vars: &[(String, Var)], weight_decay: f64) -> Result<Self> {
        let zeros = || -> Result<Vec<Tensor>> {
            vars.iter()
                .map(|(_, v)| Ok(v.as_tensor().zeros_like()?))
                .collect()
        };
        Ok(AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            steps: 0,
            m: zeros()?,
            v: zeros()?,
        })
    }

    /// One update of every variable with its gradient at learning rate `lr`.
    pub fn step(&mut self, vars: &[(String, Var)], grads: &[Tensor], lr: f64) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        for (i, ((_, var), g)) in vars.iter().zip(grads).enumerate() {
            let m = ((&self.m[i] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)?;
            let theta = var.as_tensor().detach();
            let theta = if self.weight_decay > 0.0 {
                (theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta
            };
            var.set(&(theta - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Moment estimates keyed `NAME.adam_m` / `NAME.adam_v`, for checkpoints.
    pub fn state(&self, vars: &[(String, Var)]) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (n, _)) in vars.iter().enumerate() {
            out.insert(format!("{n}.adam_m"), self.m[i].clone());
            out.insert(format!("{n}.adam_v"), self.v[i].clone());
        }
        out
    }

    /// Restores what [`Self::state`] saved.
    pub fn load_state(
        &mut self,
        vars: &[(String, Var)],
        saved: &HashMap<String, Tensor>,
        steps: usize,
    ) -> Result<()> {
        for (i, (n, v)) in vars.iter().enumerate() {
            let get = |k: String| -> Result<Tensor> {
                Ok(saved
                    .get(&k)
                    .with_context(|| format!("checkpoint has no {k}"))?
                    .to_device(v.device())?)
            };
            self.m[i] = get(format!("{n}.adam_m"))?;
            self.v[i] = get(format!("{n}.adam_v"))?;
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule {
            peak: 1.0,
            warmup: 4,
            total: 14,
            min_ratio: 0.1,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert!((s.lr(4) - 1.0).abs() < 1e-12);
        assert!((s.lr(9) - 0.55).abs() < 1e-12);
        assert!((s.lr(14) - 0.1).abs() < 1e-12);
        assert!((s.lr(100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn clipping_and_adamw_move_towards_the_minimum() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[3f32, -4.0], &dev).unwrap()).unwrap();
        let vars = vec![("x".to_string(), x.clone())];
        let mut opt = AdamW::new(&vars, 0.0).unwrap();
        for _ in 0..200 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let store = loss.backward().unwrap();
            let mut acc = GradAccum::new(1);
            acc.add(&vars, &store).unwrap();
            let mut g = acc.take(&vars).unwrap();
            let norm = clip_grad_norm(&mut g, 1.0).unwrap();
            assert!(norm >= 0.0);
            opt.step(&vars, &g, 0.05).unwrap();
        }
        let v = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| x.abs() < 0.2), "{v:?}");
    }
}
