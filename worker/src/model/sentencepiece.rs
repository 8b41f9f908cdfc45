//! SentencePiece BPE (Gemma's tokenizer) in a few flat arrays.
//!
//! Hugging Face's `tokenizers` holds a vocabulary both ways as hash maps of strings and the merges
//! as a third: about 76 MB of a worker serving Gemma 3 (262,144 tokens, 513,511 merges). The
//! `tokenizer.json` that `model prepare` writes for a SentencePiece vocabulary
//! (`tokenizer_json.py` `sentencepiece_merges`) follows one rule: every split of a token into two
//! tokens is a merge, the merges ranked by the token they make. So two neighbours merge exactly
//! when their concatenation is a token some merge makes, and the pair's place in the list is
//! (that token's rank, left id, right id): the merges need not be stored. This keeps the pieces in
//! one buffer, an index from piece to id and a rank per token (about 7 MB for Gemma).
//!
//! It is used only for such a document: [`SentencePiece::from_json`] checks the normaliser,
//! decoder, added tokens and every merge against the rule, and answers `None` for anything else,
//! which `tokenizers` then loads. Encoding and decoding follow `tokenizers`' BPE step for step
//! (the same ids and text, tested against it on the same files).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
};

use serde::Deserialize;
use serde_json::{Value, json};

/// No id (an empty slot of the index, a token no merge makes, a missing byte token).
const NONE: u32 = u32::MAX;

/// A SentencePiece BPE tokenizer (see the module docs).
#[derive(Debug)]
pub struct SentencePiece {
    /// Every piece's UTF-8, one after another: id `i`'s is `text[ends[i - 1]..ends[i]]`.
    text: Vec<u8>,
    ends: Vec<u32>,
    /// Open addressing from a piece to its id (`NONE`: empty), a power of two long.
    index: Vec<u32>,
    /// Per id: the rank of the merges that make it (`NONE`: no merge does).
    rank: Vec<u32>,
    /// The `<0xNN>` tokens by byte, for characters outside the vocabulary.
    byte_tokens: [u32; 256],
    unk: Option<u32>,
    fuse_unk: bool,
    /// Added tokens (matched whole in the raw text first, longest at the leftmost place).
    added: HashMap<Box<str>, u32>,
    /// The lengths in bytes of the added tokens, longest first.
    added_lengths: Vec<usize>,
    /// Whether an added token starts with this byte.
    added_first: [bool; 256],
    /// Per id: a special token (left out when decoding).
    special: Vec<bool>,
}

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    added_tokens: Vec<AddedToken<'a>>,
    normalizer: Value,
    pre_tokenizer: Value,
    decoder: Value,
    #[serde(borrow)]
    model: Model<'a>,
}

#[derive(Deserialize)]
struct AddedToken<'a> {
    id: u32,
    #[serde(borrow)]
    content: std::borrow::Cow<'a, str>,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

#[derive(Deserialize)]
struct Model<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    dropout: Option<f64>,
    unk_token: Option<String>,
    continuing_subword_prefix: Option<String>,
    end_of_word_suffix: Option<String>,
    fuse_unk: bool,
    byte_fallback: bool,
    #[serde(default)]
    ignore_merges: bool,
    #[serde(borrow)]
    vocab: HashMap<std::borrow::Cow<'a, str>, u32>,
    #[serde(borrow)]
    merges: Vec<(std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
}

/// FNV-1a: the index's hash (pieces are short; nothing here is chosen by a client to collide
/// but prompts, whose pieces are looked up, not stored).
fn hash(bytes: &[u8]) -> usize {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

impl SentencePiece {
    /// The tokenizer of a `tokenizer.json` document, or `None` when the document is not the
    /// SentencePiece BPE this module reproduces exactly (see the module docs).
    pub fn from_json(json: &str) -> Option<Self> {
        let doc: Document<'_> = serde_json::from_str(json).ok()?;
        let m = &doc.model;
        let shapes = m.kind == "BPE"
            && m.dropout.is_none()
            && m.continuing_subword_prefix.is_none()
            && m.end_of_word_suffix.is_none()
            && m.byte_fallback
            && !m.ignore_merges
            && doc.normalizer
                == json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"})
            && doc.pre_tokenizer.is_null()
            && doc.decoder
                == json!({"type": "Sequence", "decoders": [
                    {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                    {"type": "ByteFallback"}, {"type": "Fuse"}]});
        if !shapes {
            return None;
        }
        let len = m.vocab.len();
        let mut pieces: Vec<Option<&str>> = vec![None; len];
        for (piece, &id) in &m.vocab {
            *pieces.get_mut(id as usize)? = Some(piece.as_ref());
        }
        let (mut text, mut ends) = (Vec::new(), Vec::with_capacity(len));
        for piece in &pieces {
            text.extend_from_slice((*piece)?.as_bytes());
            ends.push(u32::try_from(text.len()).ok()?);
        }
        let mut sp = Self {
            text,
            ends,
            index: vec![NONE; (len * 2).next_power_of_two()],
            rank: vec![NONE; len],
            byte_tokens: [NONE; 256],
            unk: None,
            fuse_unk: m.fuse_unk,
            added: HashMap::new(),
            added_lengths: Vec::new(),
            added_first: [false; 256],
            special: vec![false; len],
        };
        for id in 0..len as u32 {
            sp.insert(id);
        }
        for b in 0..=255u8 {
            sp.byte_tokens[b as usize] = sp.id(format!("<0x{b:02X}>").as_bytes()).unwrap_or(NONE);
        }
        sp.unk = match &m.unk_token {
            Some(unk) => Some(sp.id(unk.as_bytes())?),
            None => None,
        };
        for t in &doc.added_tokens {
            let plain = !(t.single_word || t.lstrip || t.rstrip || t.normalized);
            if !plain || t.content.is_empty() || sp.id(t.content.as_bytes()) != Some(t.id) {
                return None;
            }
            sp.added.insert(t.content.as_ref().into(), t.id);
            sp.added_first[t.content.as_bytes()[0] as usize] = true;
            sp.special[t.id as usize] = t.special;
        }
        sp.added_lengths = sp.added.keys().map(|c| c.len()).collect();
        sp.added_lengths.sort_unstable_by(|a, b| b.cmp(a));
        sp.added_lengths.dedup();
        sp.check_merges(&m.merges)?;
        Some(sp)
    }

    /// Ranks the tokens the merges make, and checks the merges are exactly the rule's: each makes
    /// the token its two pieces spell, a token's merges come together in ascending (left, right)
    /// order, and every split of a ranked token into two tokens is among them.
    fn check_merges(
        &mut self,
        merges: &[(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)],
    ) -> Option<()> {
        let mut made = vec![0u32; self.ends.len()];
        let (mut group, mut last) = (NONE, (0, 0));
        let mut joined = Vec::new();
        for (left, right) in merges {
            let (a, b) = (self.id(left.as_bytes())?, self.id(right.as_bytes())?);
            joined.clear();
            joined.extend_from_slice(left.as_bytes());
            joined.extend_from_slice(right.as_bytes());
            let t = self.id(&joined)?;
            if t != group {
                if self.rank[t as usize] != NONE {
                    return None; // its merges are not together
                }
                self.rank[t as usize] = if group == NONE {
                    0
                } else {
                    self.rank[group as usize] + 1
                };
                group = t;
            } else if (a, b) <= last {
                return None;
            }
            last = (a, b);
            made[t as usize] += 1;
        }
        for t in 0..self.ends.len() as u32 {
            if self.rank[t as usize] == NONE {
                continue;
            }
            let piece = self.piece(t).expect("ids below the vocabulary's length");
            let splits = piece
                .char_indices()
                .skip(1)
                .filter(|&(at, _)| {
                    self.id(&piece.as_bytes()[..at]).is_some()
                        && self.id(&piece.as_bytes()[at..]).is_some()
                })
                .count();
            if splits != made[t as usize] as usize {
                return None;
            }
        }
        Some(())
    }

    fn insert(&mut self, id: u32) {
        let mask = self.index.len() - 1;
        let mut at = hash(self.bytes(id)) & mask;
        while self.index[at] != NONE {
            at = (at + 1) & mask;
        }
        self.index[at] = id;
    }

    fn bytes(&self, id: u32) -> &[u8] {
        let id = id as usize;
        let start = id
            .checked_sub(1)
            .map_or(0, |before| self.ends[before] as usize);
        &self.text[start..self.ends[id] as usize]
    }

    /// The id of the piece spelled `bytes`.
    fn id(&self, bytes: &[u8]) -> Option<u32> {
        let mask = self.index.len() - 1;
        let mut at = hash(bytes) & mask;
        loop {
            let id = self.index[at];
            if id == NONE {
                return None;
            }
            if self.bytes(id) == bytes {
                return Some(id);
            }
            at = (at + 1) & mask;
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The piece of token `id` as the vocabulary writes it (U+2581 for a space, `<0xNN>`).
    pub fn piece(&self, id: u32) -> Option<&str> {
        if id as usize >= self.ends.len() {
            return None;
        }
        std::str::from_utf8(self.bytes(id)).ok()
    }

    /// Whether `id` is a special token.
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The ids of `text`: added tokens matched whole first, the rest with spaces as U+2581
    /// merged pair by pair.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut from = 0;
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let found = if self.added_first[bytes[at] as usize] {
                self.added_lengths.iter().find_map(|&n| {
                    let piece = text.get(at..at + n)?;
                    self.added.get(piece).map(|&id| (id, n))
                })
            } else {
                None
            };
            match found {
                Some((id, n)) => {
                    self.encode_plain(&text[from..at], &mut ids);
                    ids.push(id);
                    at += n;
                    from = at;
                }
                None => at += 1,
            }
        }
        self.encode_plain(&text[from..], &mut ids);
        ids
    }

    /// BPE of text holding no added token, as `tokenizers`' `BPE::merge_word` and
    /// `Word::merge_all` do it.
    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let normalized = text.replace(' ', "\u{2581}");
        // (id, alive) per symbol, linked both ways.
        let mut symbols: Vec<Symbol> = Vec::with_capacity(normalized.len());
        let mut unk: Option<u32> = None;
        let mut buf = [0u8; 4];
        for c in normalized.chars() {
            let s = c.encode_utf8(&mut buf);
            if let Some(id) = self.id(s.as_bytes()) {
                if unk.take().is_some() {
                    push(&mut symbols, self.unk.expect("set with unk"));
                }
                push(&mut symbols, id);
            } else if s.bytes().all(|b| self.byte_tokens[b as usize] != NONE) {
                // As `tokenizers` does: a pending unknown stays pending past the bytes.
                for b in s.bytes() {
                    push(&mut symbols, self.byte_tokens[b as usize]);
                }
            } else if let Some(unk_id) = self.unk {
                if unk.is_some() && !self.fuse_unk {
                    push(&mut symbols, unk_id);
                }
                unk = Some(unk_id);
            }
        }
        if unk.is_some() {
            push(&mut symbols, self.unk.expect("set with unk"));
        }
        // The queue orders (rank, left, right) as the merges' list does, then by place.
        let mut queue = BinaryHeap::new();
        let mut joined = Vec::new();
        let mut merge_of = |a: u32, b: u32| -> Option<(u32, u32, u32, u32)> {
            joined.clear();
            joined.extend_from_slice(self.bytes(a));
            joined.extend_from_slice(self.bytes(b));
            let t = self.id(&joined)?;
            let rank = self.rank[t as usize];
            (rank != NONE).then_some((rank, a, b, t))
        };
        for pos in 0..symbols.len().saturating_sub(1) {
            if let Some(m) = merge_of(symbols[pos].id, symbols[pos + 1].id) {
                queue.push(Reverse((m, pos)));
            }
        }
        while let Some(Reverse(((_, _, _, new_id), pos))) = queue.pop() {
            if !symbols[pos].alive || symbols[pos].next == usize::MAX {
                continue;
            }
            let next = symbols[pos].next;
            // A stale entry: the pair here no longer makes its token.
            if merge_of(symbols[pos].id, symbols[next].id).map(|m| m.3) != Some(new_id) {
                continue;
            }
            symbols[pos].id = new_id;
            symbols[pos].next = symbols[next].next;
            symbols[next].alive = false;
            let after = symbols[pos].next;
            if let Some(after) = symbols.get_mut(after) {
                after.prev = pos;
            }
            let prev = symbols[pos].prev;
            if prev != usize::MAX
                && let Some(m) = merge_of(symbols[prev].id, new_id)
            {
                queue.push(Reverse((m, prev)));
            }
            if after != usize::MAX
                && let Some(m) = merge_of(new_id, symbols[after].id)
            {
                queue.push(Reverse((m, pos)));
            }
        }
        ids.extend(symbols.iter().filter(|s| s.alive).map(|s| s.id));
    }

    /// The text of `ids` without special tokens, as `tokenizers`' decoder chain (U+2581 as a
    /// space, runs of `<0xNN>` as their UTF-8 or one U+FFFD per byte, joined) writes it; ids past
    /// the vocabulary are left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut bytes = Vec::new();
        let flush = |out: &mut String, bytes: &mut Vec<u8>| {
            if bytes.is_empty() {
                return;
            }
            match std::str::from_utf8(bytes) {
                Ok(s) => out.push_str(s),
                Err(_) => out.extend(std::iter::repeat_n('\u{FFFD}', bytes.len())),
            }
            bytes.clear();
        };
        for &id in ids {
            let Some(piece) = self.piece(id) else {
                continue;
            };
            if self.is_special(id) {
                continue;
            }
            let piece = piece.replace('\u{2581}', " ");
            let byte = (piece.len() == 6 && piece.starts_with("<0x") && piece.ends_with('>'))
                .then(|| u8::from_str_radix(&piece[3..5], 16).ok())
                .flatten();
            match byte {
                Some(b) => bytes.push(b),
                None => {
                    flush(&mut out, &mut bytes);
                    out.push_str(&piece);
                }
            }
        }
        flush(&mut out, &mut bytes);
        out
    }
}

/// One symbol of a word being merged (`usize::MAX`: no neighbour).
#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    alive: bool,
}

fn push(symbols: &mut Vec<Symbol>, id: u32) {
    let at = symbols.len();
    if let Some(last) = symbols.last_mut() {
        last.next = at;
    }
    symbols.push(Symbol {
        id,
        prev: at.checked_sub(1).unwrap_or(usize::MAX),
        next: usize::MAX,
        alive: true,
    });
}

#[cfg(test)]
#[path = "sentencepiece_tests.rs"]
mod tests;
