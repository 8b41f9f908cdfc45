//! Next-token choice: the logits shaped (`logit_bias`, presence and frequency penalties), held
//! to a grammar when the answer is constrained (`constrain`), then greedy, or temperature and
//! nucleus (top-p) sampling from a seeded generator; with the log-probabilities when asked.

use std::collections::HashMap;

use super::constrain::Guide;

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

/// What is done to the logits before a token is picked (OpenAI's `logit_bias`,
/// `presence_penalty` and `frequency_penalty`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shaping {
    /// Added to these tokens' logits (-100 bans a token, 100 all but forces it).
    pub logit_bias: Vec<(u32, f32)>,
    /// Subtracted once from the logit of every token already generated.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit per time it was generated.
    pub frequency_penalty: f32,
}

/// The log-probability of a chosen token, and of the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token chosen.
    pub token: u32,
    /// Its log-probability.
    pub logprob: f32,
    /// The most likely tokens at that step with theirs, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// A token picked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pick {
    pub(crate) token: u32,
    pub(crate) logprob: Option<TokenLogprob>,
}

/// Candidates kept before the nucleus is sorted (the rest rarely matter; see `sample`).
const SHORTLIST: usize = 256;

/// A sampler for one sequence.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    cfg: Sampling,
    shaping: Shaping,
    /// Times each token was generated (for the penalties).
    counts: HashMap<u32, u32>,
    guide: Option<Guide>,
    /// Tokens picked under the guide, and how many needed its full mask.
    guided: (u64, u64),
    /// Alternatives to report per token, when log-probabilities are asked for.
    logprobs: Option<usize>,
    rng: SplitMix64,
    scratch: Vec<(u32, f32)>,
}

impl Sampler {
    #[cfg(test)]
    pub(crate) fn new(cfg: Sampling) -> Self {
        Self::with(cfg, Shaping::default(), None, None)
    }

    pub(crate) fn with(
        cfg: Sampling,
        shaping: Shaping,
        guide: Option<Guide>,
        logprobs: Option<usize>,
    ) -> Self {
        Self {
            cfg,
            shaping,
            counts: HashMap::new(),
            guide,
            guided: (0, 0),
            logprobs,
            rng: SplitMix64(cfg.seed),
            scratch: Vec::new(),
        }
    }

    /// Tokens picked under a grammar, and how many of them needed the full mask (zeros when
    /// the answer is free).
    pub(crate) fn guided(&self) -> (u64, u64) {
        self.guided
    }

    /// The constrained answer is whole: nothing may follow the last token picked.
    pub(crate) fn finished(&self) -> bool {
        self.guide.as_ref().is_some_and(Guide::is_finished)
    }

    /// Picks the next token from one row of logits (which it shapes in place); `None` when a
    /// grammar allows no token at all.
    pub(crate) fn pick(&mut self, logits: &mut [f32]) -> Option<Pick> {
        for &(t, bias) in &self.shaping.logit_bias {
            if let Some(l) = logits.get_mut(t as usize) {
                *l += bias;
            }
        }
        let (presence, frequency) = (
            self.shaping.presence_penalty,
            self.shaping.frequency_penalty,
        );
        if presence != 0.0 || frequency != 0.0 {
            for (&t, &n) in &self.counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= presence + frequency * n as f32;
                }
            }
        }
        let token = match self.guide.take() {
            None => self.sample(logits),
            Some(mut guide) => {
                let exact_first =
                    self.logprobs.is_some() || (self.cfg.temperature > 0.0 && self.cfg.top_p < 1.0);
                let first = (!exact_first)
                    .then(|| self.sample(logits))
                    .filter(|&t| guide.allows(t));
                let token = match first {
                    Some(t) => Some(t),
                    None => {
                        self.guided.1 += 1;
                        guide.apply_mask(logits).then(|| self.sample(logits))
                    }
                };
                self.guided.0 += 1;
                if let Some(t) = token {
                    guide.advance(t);
                }
                self.guide = Some(guide);
                token?
            }
        };
        *self.counts.entry(token).or_default() += 1;
        let logprob = self.logprobs.map(|top| logprob_of(logits, token, top));
        Some(Pick { token, logprob })
    }

    /// Draws a token from one row of logits as they are.
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

/// Log-softmax of `logits` at `token`, and the `top` most likely tokens with theirs.
fn logprob_of(logits: &[f32], token: u32, top: usize) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let lse = max + sum.ln();
    let at = |t: u32| {
        logits
            .get(t as usize)
            .map_or(f32::NEG_INFINITY, |&l| l - lse)
    };
    let mut best: Vec<(u32, f32)> = Vec::new();
    if top > 0 {
        best = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .filter(|c| c.1.is_finite())
            .collect();
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if best.len() > top {
            best.select_nth_unstable_by(top - 1, by_logit);
            best.truncate(top);
        }
        best.sort_unstable_by(by_logit);
        for c in &mut best {
            c.1 -= lse;
        }
    }
    TokenLogprob {
        token,
        logprob: at(token),
        top: best,
    }
}

/// Index of the largest logit (the first one on ties; NaNs never win, and with no number at
/// all it is 0).
///
/// The maximum is found 16 lanes at a time (the compiler vectorises the lane-wise loop), then
/// its first index: a step of 16 greedy streams over Gemma 3's 262,144 logits scans 16 MB, on
/// the engine's thread while the kernels' threads wait.
pub(crate) fn argmax(logits: &[f32]) -> u32 {
    const LANES: usize = 16;
    let larger = |m: f32, v: f32| if v > m { v } else { m };
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = larger(*m, v);
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .copied()
        .fold(f32::NEG_INFINITY, larger);
    logits.iter().position(|&l| l == max).unwrap_or(0) as u32
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
    fn argmax_is_the_first_largest_wherever_it_lies() {
        // A scan keeping the first of equal values, the reference.
        let scan = |l: &[f32]| {
            let mut best = 0;
            for (i, &v) in l.iter().enumerate() {
                if v > l[best] || l[best].is_nan() && !v.is_nan() {
                    best = i;
                }
            }
            best as u32
        };
        let mut rng = SplitMix64(7);
        for len in [1, 15, 16, 17, 33, 1000, 262_144] {
            let mut l: Vec<f32> = (0..len).map(|_| rng.next_f32() * 20.0 - 10.0).collect();
            assert_eq!(argmax(&l), scan(&l), "len {len}");
            // The largest in the tail past the last full 16, then tied earlier, then NaNs.
            l[len - 1] = 11.0;
            assert_eq!(argmax(&l), len as u32 - 1, "len {len}, largest last");
            l[len / 2] = 11.0;
            assert_eq!(argmax(&l), len as u32 / 2, "len {len}, tied");
            l[0] = f32::NAN;
            assert_eq!(argmax(&l), scan(&l), "len {len}, a NaN first");
        }
        assert_eq!(argmax(&[f32::NEG_INFINITY; 20]), 0);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[]), 0);
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
    fn bias_and_penalties_shape_the_logits() {
        let mut s = Sampler::with(
            Sampling {
                temperature: 0.0,
                ..Default::default()
            },
            Shaping {
                logit_bias: vec![(0, 100.0), (9, 5.0)],
                ..Default::default()
            },
            None,
            None,
        );
        assert_eq!(s.pick(&mut [0.0, 3.0, 1.0]).expect("a token").token, 0);
        // Repeating a token costs it: with a frequency penalty of 1.5, token 1 (logit 3) loses
        // to token 2 (logit 2) on its second turn.
        let mut s = Sampler::with(
            Sampling {
                temperature: 0.0,
                ..Default::default()
            },
            Shaping {
                frequency_penalty: 1.5,
                ..Default::default()
            },
            None,
            None,
        );
        let picks: Vec<u32> = (0..3)
            .map(|_| s.pick(&mut [0.0, 3.0, 2.0]).expect("a token").token)
            .collect();
        assert_eq!(picks, vec![1, 2, 1]);
        let mut s = Sampler::with(
            Sampling {
                temperature: 0.0,
                ..Default::default()
            },
            Shaping {
                presence_penalty: 0.5,
                ..Default::default()
            },
            None,
            None,
        );
        let picks: Vec<u32> = (0..3)
            .map(|_| s.pick(&mut [0.0, 3.0, 2.6]).expect("a token").token)
            .collect();
        assert_eq!(picks, vec![1, 2, 1], "presence costs once, however often");
    }

    #[test]
    fn logprobs_are_the_log_softmax_with_the_top_alternatives() {
        let mut s = Sampler::with(
            Sampling {
                temperature: 0.0,
                ..Default::default()
            },
            Shaping::default(),
            None,
            Some(2),
        );
        let logits = [1.0f32, 3.0, 2.0, -1.0];
        let pick = s.pick(&mut logits.clone()).expect("a token");
        let lse = logits.iter().map(|l| l.exp()).sum::<f32>().ln();
        let lp = pick.logprob.expect("asked for");
        assert_eq!(lp.token, 1);
        assert!((lp.logprob - (3.0 - lse)).abs() < 1e-6);
        assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((lp.top[1].1 - (2.0 - lse)).abs() < 1e-6);
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
