//! Constrained decoding: an answer that must be JSON, of a schema or any object
//! (`response_format`), is made by masking, at every step, the tokens whose bytes would break
//! it. The mask is the expensive part (a walk of the vocabulary's trie), so the sampler first
//! draws as if unconstrained and checks that one token ([`Guide::allows`]): only when the grammar
//! refuses it is the mask computed and the token drawn again from the allowed ones. For greedy
//! decoding, and for temperature sampling without a nucleus, that is exactly the masked
//! distribution (drawing from `p` and redrawing from `p` restricted to the allowed set `A`
//! gives token `t` in `A` with probability `p(t) + (1 - p(A)) p(t) / p(A) = p(t) / p(A)`);
//! with `top_p` below 1 or log-probabilities asked for, the mask is computed first. A sequence
//! keeps the last few masks by the matcher's canonical state ([`Matcher::canonical`]): inside a
//! long string every step's state is the same there, and the walk is made once.

mod grammar;
mod matcher;
mod schema;
mod vocab;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

pub use grammar::Grammar;
pub use schema::{SchemaError, compile, compile_calls};
pub use vocab::Vocab;

use matcher::Matcher;

/// A grammar being followed by one sequence.
#[derive(Debug, Clone)]
pub(crate) struct Guide {
    grammar: Arc<Grammar>,
    vocab: Arc<Vocab>,
    matcher: Matcher,
    eos: Arc<HashSet<u32>>,
    /// Masks by canonical state (without the end-of-sequence tokens), at most [`MASKS_KEPT`].
    masks: HashMap<Matcher, Arc<[bool]>>,
}

/// Masks a sequence keeps (each one flag per token id: 262 KB for Gemma's vocabulary).
const MASKS_KEPT: usize = 8;

impl Guide {
    pub(crate) fn new(grammar: Arc<Grammar>, vocab: Arc<Vocab>, eos: Arc<HashSet<u32>>) -> Self {
        Self {
            matcher: Matcher::new(&grammar),
            grammar,
            vocab,
            eos,
            masks: HashMap::new(),
        }
    }

    /// Whether `token` may come next: an end-of-sequence token once the answer is whole, or a
    /// token whose bytes the grammar takes.
    pub(crate) fn allows(&self, token: u32) -> bool {
        if self.eos.contains(&token) {
            return self.matcher.is_complete();
        }
        self.vocab
            .bytes(token)
            .is_some_and(|b| self.matcher.allows(&self.grammar, b))
    }

    /// Sets every token the grammar refuses to minus infinity; false when it allows none.
    pub(crate) fn apply_mask(&mut self, logits: &mut [f32]) -> bool {
        let state = self.matcher.canonical(&self.grammar, self.vocab.longest());
        let mask = match self.masks.get(&state) {
            Some(mask) => Arc::clone(mask),
            None => {
                let mut mask = Vec::new();
                self.vocab.mask(&self.grammar, &self.matcher, &mut mask);
                let mask: Arc<[bool]> = mask.into();
                if self.masks.len() >= MASKS_KEPT {
                    self.masks.clear();
                }
                self.masks.insert(state, Arc::clone(&mask));
                mask
            }
        };
        // The end of sequence is allowed once the answer is whole (the cached mask leaves it out:
        // the canonical state does not say whether the answer is complete).
        let ends: Vec<(usize, f32)> = if self.matcher.is_complete() {
            self.eos
                .iter()
                .map(|&e| e as usize)
                .filter(|&e| e < mask.len().min(logits.len()))
                .map(|e| (e, logits[e]))
                .collect()
        } else {
            Vec::new()
        };
        let mut any = !ends.is_empty();
        for (l, &ok) in logits.iter_mut().zip(mask.iter()) {
            if ok {
                any = true;
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        for (e, logit) in ends {
            logits[e] = logit;
        }
        // Ids past the vocabulary's (padding of the logits) are never allowed.
        for l in logits.iter_mut().skip(mask.len()) {
            *l = f32::NEG_INFINITY;
        }
        any
    }

    /// Takes `token` (one [`allows`](Self::allows) accepted).
    pub(crate) fn advance(&mut self, token: u32) {
        if let Some(bytes) = self.vocab.bytes(token) {
            self.matcher.feed(&self.grammar, bytes);
        }
    }

    /// The answer is whole and nothing may follow it: generation ends here.
    pub(crate) fn is_finished(&self) -> bool {
        self.matcher.is_finished(&self.grammar)
    }
}

#[cfg(test)]
mod tests;
