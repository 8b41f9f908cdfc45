//! Next-token choice: greedy, or temperature and nucleus (top-p) sampling from a seeded generator.

/// How to pick tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it.
    pub temperature: f32,
    /// Smallest set of tokens whose probability reaches this mass (1 keeps them all).
    pub top_p: f32,
    /// Seed of the generator: the same seed, prompt and settings give the same answer.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Candidates kept before the nucleus is sorted (the rest rarely matter; see `sample`).
const SHORTLIST: usize = 256;

/// A sampler for one sequence.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    cfg: Sampling,
    rng: SplitMix64,
    scratch: Vec<(u32, f32)>,
}

impl Sampler {
    pub(crate) fn new(cfg: Sampling) -> Self {
        Self {
            cfg,
            rng: SplitMix64(cfg.seed),
            scratch: Vec::new(),
        }
    }

    /// Picks the next token from one row of logits.
    pub(crate) fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.temperature <= 0.0 {
            return argmax(logits);
        }
        let inv_t = 1.0 / self.cfg.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.scratch.clear();
        self.scratch.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, ((l - max) * inv_t).exp())),
        );
        let total: f32 = self.scratch.iter().map(|c| c.1).sum();
        if self.cfg.top_p < 1.0 {
            // Nucleus: sort a shortlist of the largest; fall back to all when it is too small.
            let by_prob = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
            if self.scratch.len() > SHORTLIST {
                self.scratch.select_nth_unstable_by(SHORTLIST, by_prob);
                let short: f32 = self.scratch[..SHORTLIST].iter().map(|c| c.1).sum();
                if short >= self.cfg.top_p * total {
                    self.scratch.truncate(SHORTLIST);
                }
            }
            self.scratch.sort_unstable_by(by_prob);
            let target = self.cfg.top_p * total;
            let mut acc = 0.0;
            let mut keep = self.scratch.len();
            for (i, c) in self.scratch.iter().enumerate() {
                acc += c.1;
                if acc >= target {
                    keep = i + 1;
                    break;
                }
            }
            self.scratch.truncate(keep);
        }
        let mass: f32 = self.scratch.iter().map(|c| c.1).sum();
        let mut r = self.rng.next_f32() * mass;
        for c in &self.scratch {
            r -= c.1;
            if r <= 0.0 {
                return c.0;
            }
        }
        self.scratch.last().map_or(0, |c| c.0)
    }
}

/// Index of the largest logit (the first one on ties).
pub(crate) fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// SplitMix64: small, fast and fully determined by its seed.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest() {
        let mut s = Sampler::new(Sampling {
            temperature: 0.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9]), 1);
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 97) as f32 / 10.0).collect();
        let cfg = Sampling {
            temperature: 0.8,
            top_p: 0.9,
            seed: 42,
        };
        let a: Vec<u32> = {
            let mut s = Sampler::new(cfg);
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        let b: Vec<u32> = {
            let mut s = Sampler::new(cfg);
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn tiny_top_p_is_greedy() {
        let mut s = Sampler::new(Sampling {
            temperature: 1.0,
            top_p: 1e-6,
            seed: 1,
        });
        let logits = [0.0, 5.0, 1.0, 4.0];
        for _ in 0..10 {
            assert_eq!(s.sample(&logits), 1);
        }
    }
}
