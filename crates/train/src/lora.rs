//! Linear projections with optional LoRA adapters: `y = x Wᵀ + s·(x Aᵀ) Bᵀ` with `s = alpha /
//! rank`, and the merge `W + s·B A` used on export.
//!
//! Written here because no maintained candle LoRA crate is published; the math is the one of
//! the LoRA paper (A Kaiming-uniform, B zero, so training starts from the base model exactly).

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand::rngs::StdRng;

/// LoRA shape: rank and alpha (`scale = alpha / rank`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoraSpec {
    pub rank: usize,
    pub alpha: f64,
}

impl LoraSpec {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// One adapter: `a` is `(rank, in)`, `b` is `(out, rank)`.
pub struct Adapter {
    pub a: Var,
    pub b: Var,
    pub scale: f64,
}

impl Adapter {
    /// A fresh adapter for a weight of shape `(out, in)`: A uniform in ±1/√in (PEFT's
    /// Kaiming-uniform bound), B zero.
    pub fn new(
        out: usize,
        inp: usize,
        spec: LoraSpec,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (inp as f32).sqrt();
        let a: Vec<f32> = (0..spec.rank * inp)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Tensor::from_vec(a, (spec.rank, inp), device)?;
        let b = Tensor::zeros((out, spec.rank), DType::F32, device)?;
        Ok(Adapter {
            a: Var::from_tensor(&a)?,
            b: Var::from_tensor(&b)?,
            scale: spec.scale(),
        })
    }

    /// `s · B A`, the adapter's update to the base weight.
    pub fn delta(&self) -> Result<Tensor> {
        Ok((self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale)?)
    }
}

/// A projection `(out, in)` in GGUF layout, with an optional adapter.
pub struct Linear {
    pub weight: Tensor,
    pub adapter: Option<Adapter>,
}

impl Linear {
    /// `x` is `(n, in)`; returns `(n, out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        match &self.adapter {
            None => Ok(y),
            Some(ad) => {
                let low = x.matmul(&ad.a.as_tensor().t()?)?;
                let up = low.matmul(&ad.b.as_tensor().t()?)?;
                Ok((y + (up * ad.scale)?)?)
            }
        }
    }

    /// The weight with the adapter merged in.
    pub fn merged(&self) -> Result<Tensor> {
        match &self.adapter {
            None => Ok(self.weight.detach()),
            Some(ad) => Ok((self.weight.detach() + ad.delta()?.detach())?),
        }
    }
}
