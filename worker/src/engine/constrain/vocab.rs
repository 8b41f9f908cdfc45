//! The bytes each token writes, and a trie of them: the mask of tokens a [`Matcher`] allows is
//! one walk of the trie, where a byte the grammar refuses cuts off every token that starts
//! with it (inside a key or after a value, nearly all of the vocabulary at the first byte).
//! Inside a string nearly nothing is cut off, and a walk would visit the whole trie (100 ms for
//! Gemma's 262,144 tokens); there the tokens without a `"` come from a table of which tokens are
//! valid string content (made once), and the walk visits only the subtrees holding a `"`.

use std::sync::OnceLock;

use crate::model::TextTokenizer;

use super::{compile, grammar::Grammar, matcher::Matcher};

/// The vocabulary as bytes.
///
/// Laid out flat, because a 262,144-token vocabulary is about a million trie nodes: one heap
/// allocation per token and two per node held 63 MB of Gemma 3's worker; these arrays hold ~18.
#[derive(Debug)]
pub struct Vocab {
    /// Every token's bytes, one after another; token `id`'s are `data[ends[id - 1]..ends[id]]`
    /// (empty for special tokens, which are never part of an answer).
    data: Vec<u8>,
    ends: Vec<u32>,
    /// The trie of the tokens' bytes in preorder, so that a node's subtree is the range of nodes
    /// from it to `subtree_end[node]`, its first child (if any) the next node and each further
    /// child the end of its sibling's subtree.
    trie: Trie,
    /// The most bytes of one token.
    longest: u32,
    /// Per token id: whether it is valid string content without a `"` (see module docs).
    string_content: OnceLock<Vec<bool>>,
}

/// Trie nodes as parallel arrays (node 0 the root, which no token ends at).
#[derive(Debug, Default)]
struct Trie {
    /// The byte leading into the node from its parent.
    byte: Vec<u8>,
    /// One past the last node of the node's subtree.
    subtree_end: Vec<u32>,
    /// The tokens ending at the node: `ids[first[node]..first[node] + count[node]]`.
    first: Vec<u32>,
    count: Vec<u32>,
    /// Per node: whether a token at or below it holds a `"`.
    quote_below: Vec<bool>,
    /// Token ids sorted by their bytes (ties by id): a node's own tokens come first among those
    /// of its subtree.
    ids: Vec<u32>,
}

impl Trie {
    /// The trie of the tokens `piece` gives bytes for (ids `0..len`; empty ones are left out).
    fn build<'a>(len: usize, piece: impl Fn(u32) -> &'a [u8]) -> Self {
        let mut ids: Vec<u32> = (0..len as u32)
            .filter(|&id| !piece(id).is_empty())
            .collect();
        ids.sort_by(|&a, &b| piece(a).cmp(piece(b)).then(a.cmp(&b)));
        let mut t = Trie::default();
        t.push(0, 0);
        // The nodes from the root to where the previous token ended, one per depth.
        let mut path: Vec<u32> = vec![0];
        let mut previous: &[u8] = &[];
        for (at, &id) in ids.iter().enumerate() {
            let bytes = piece(id);
            let common = bytes
                .iter()
                .zip(previous)
                .take_while(|(a, b)| a == b)
                .count();
            // In sorted order a node's subtree is over once a token leaves its prefix.
            while path.len() > common + 1 {
                let node = path.pop().expect("the root stays") as usize;
                t.subtree_end[node] = t.byte.len() as u32;
            }
            for &b in &bytes[common..] {
                path.push(t.byte.len() as u32);
                t.push(b, at as u32);
            }
            let node = *path.last().expect("the root stays") as usize;
            t.count[node] += 1;
            previous = bytes;
        }
        for node in path {
            t.subtree_end[node as usize] = t.byte.len() as u32;
        }
        // A subtree's tokens are a run of `ids` (from its node's first to the next node's).
        let mut quotes_before = Vec::with_capacity(ids.len() + 1);
        quotes_before.push(0u32);
        for &id in &ids {
            let last = *quotes_before.last().expect("pushed above");
            quotes_before.push(last + u32::from(piece(id).contains(&b'"')));
        }
        t.quote_below = (0..t.byte.len())
            .map(|node| {
                let end = t.subtree_end[node] as usize;
                let stop = t.first.get(end).map_or(ids.len(), |&f| f as usize);
                quotes_before[stop] > quotes_before[t.first[node] as usize]
            })
            .collect();
        t.ids = ids;
        for v in [&mut t.subtree_end, &mut t.first, &mut t.count] {
            v.shrink_to_fit();
        }
        t.byte.shrink_to_fit();
        t
    }

    /// A new node reached by `byte`, whose subtree's tokens start at `ids[first]`.
    fn push(&mut self, byte: u8, first: u32) {
        self.byte.push(byte);
        self.subtree_end.push(0);
        self.first.push(first);
        self.count.push(0);
    }

    /// The tokens ending at `node`.
    fn tokens(&self, node: usize) -> &[u32] {
        let first = self.first[node] as usize;
        &self.ids[first..first + self.count[node] as usize]
    }
}

/// GPT-2's byte-level alphabet: the character each byte is written as in a byte-level BPE
/// vocabulary (printable bytes as themselves, the rest shifted above U+0100).
fn byte_level_alphabet() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut shifted = 0u32;
    for b in 0..=255u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            shifted += 1;
            char::from_u32(0xFF + shifted).unwrap_or('\0')
        };
    }
    table
}

impl Vocab {
    /// The vocabulary of `tokenizer`, `size` ids (the model's logits' width).
    pub fn new(tokenizer: &TextTokenizer, size: usize) -> Self {
        let byte_level = tokenizer.byte_level();
        let inverse: std::collections::HashMap<char, u8> = byte_level_alphabet()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let specials = tokenizer.special_ids();
        let bytes = |id: u32| -> Option<Vec<u8>> {
            if specials.contains(&id) {
                return None;
            }
            let piece = tokenizer.piece(id)?;
            if byte_level {
                piece.chars().map(|c| inverse.get(&c).copied()).collect()
            } else if let Some(hex) = piece.strip_prefix("<0x").and_then(|p| p.strip_suffix('>')) {
                Some(vec![u8::from_str_radix(hex, 16).ok()?])
            } else {
                // SentencePiece: U+2581 stands for a space.
                Some(piece.replace('\u{2581}', " ").into_bytes())
            }
        };
        Self::from_pieces((0..size as u32).map(|id| bytes(id).unwrap_or_default()))
    }

    /// The vocabulary whose token `id` writes the `id`th of `pieces` (empty: never allowed).
    pub(crate) fn from_pieces(pieces: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let (mut data, mut ends) = (Vec::new(), Vec::new());
        for piece in pieces {
            data.extend_from_slice(&piece);
            ends.push(u32::try_from(data.len()).expect("a vocabulary under 4 GiB"));
        }
        data.shrink_to_fit();
        ends.shrink_to_fit();
        let mut vocab = Self {
            data,
            ends,
            trie: Trie::default(),
            longest: 0,
            string_content: OnceLock::new(),
        };
        vocab.longest = (0..vocab.len() as u32)
            .filter_map(|id| vocab.bytes(id))
            .map(|b| b.len() as u32)
            .max()
            .unwrap_or(0);
        vocab.trie = Trie::build(vocab.len(), |id| vocab.bytes(id).unwrap_or_default());
        // Made now (tens of milliseconds for a large vocabulary) rather than inside the first
        // constrained request.
        vocab.string_content();
        vocab
    }

    /// Which tokens are valid string content without a `"`: fed after a string's opening quote,
    /// the string's own rules (escapes, UTF-8, no control bytes) take them.
    fn string_content(&self) -> &[bool] {
        self.string_content.get_or_init(|| {
            let g = compile(&serde_json::json!({"type": "string"}))
                .expect("the plain string schema compiles");
            let mut open = Matcher::new(&g);
            open.feed(&g, b"\"");
            (0..self.len() as u32)
                .map(|id| {
                    self.bytes(id)
                        .is_some_and(|b| !b.contains(&b'"') && open.allows(&g, b))
                })
                .collect()
        })
    }

    /// The bytes of token `id` (`None` for a special token or an id past the vocabulary).
    pub fn bytes(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        let end = *self.ends.get(id)? as usize;
        let start = id
            .checked_sub(1)
            .map_or(0, |before| self.ends[before] as usize);
        (end > start).then(|| &self.data[start..end])
    }

    /// The most bytes one token writes.
    pub(crate) fn longest(&self) -> u32 {
        self.longest
    }

    /// Number of token ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Marks in `allowed` (one flag per token id, cleared first) every token `m` allows next.
    pub(crate) fn mask(&self, g: &Grammar, m: &Matcher, allowed: &mut Vec<bool>) {
        allowed.clear();
        if m.in_free_string(g, self.longest) {
            allowed.extend_from_slice(self.string_content());
            self.walk(0, g, m, allowed, &mut Vec::new(), 0, true);
        } else {
            allowed.resize(self.len(), false);
            self.walk(0, g, m, allowed, &mut Vec::new(), 0, false);
        }
    }

    /// Marks the tokens below trie node `at` that `m` (the state after the node's bytes)
    /// allows, only in the subtrees holding a `"` with `quotes_only`; `scratch[depth]` holds the
    /// buffers of the states made at this depth.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        at: usize,
        g: &Grammar,
        m: &Matcher,
        allowed: &mut [bool],
        scratch: &mut Vec<(Matcher, Matcher)>,
        depth: usize,
        quotes_only: bool,
    ) {
        if scratch.len() <= depth {
            scratch.push(Default::default());
        }
        let t = &self.trie;
        let (mut child, end) = (at + 1, t.subtree_end[at] as usize);
        while child < end {
            let sibling = t.subtree_end[child] as usize;
            if quotes_only && !t.quote_below[child] {
                child = sibling;
                continue;
            }
            let (mut next, mut spare) = std::mem::take(&mut scratch[depth]);
            next.set_fed(m, g, t.byte[child], &mut spare);
            if !next.is_dead() {
                for &token in t.tokens(child) {
                    allowed[token as usize] = true;
                }
                self.walk(child, g, &next, allowed, scratch, depth + 1, quotes_only);
            }
            scratch[depth] = (next, spare);
            child = sibling;
        }
    }
}
