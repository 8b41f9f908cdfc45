//! The bytes each token writes, and a trie of them: the mask of tokens a [`Matcher`] allows is
//! one walk of the trie, where a byte the grammar refuses cuts off every token that starts
//! with it (inside a key or after a value, nearly all of the vocabulary at the first byte).
//! Inside a string nearly nothing is cut off, and a walk would visit the whole trie (100 ms for
//! Gemma's 262,144 tokens); there the tokens without a `"` come from a table of which tokens are
//! valid string content (made once), and the walk visits only the subtrees holding a `"`.

use std::sync::OnceLock;

use tokenizers::Tokenizer;

use super::{compile, grammar::Grammar, matcher::Matcher};

/// The vocabulary as bytes.
#[derive(Debug)]
pub struct Vocab {
    /// Per token id: its bytes, or `None` for special tokens (never part of an answer).
    bytes: Vec<Option<Box<[u8]>>>,
    trie: Vec<TrieNode>,
    /// Per trie node: whether a token at or below it holds a `"`.
    quote_below: Vec<bool>,
    /// The most bytes of one token.
    longest: u32,
    /// Per token id: whether it is valid string content without a `"` (see module docs).
    string_content: OnceLock<Vec<bool>>,
}

#[derive(Debug, Default)]
struct TrieNode {
    /// (byte, child index), sorted by byte.
    children: Vec<(u8, u32)>,
    /// Tokens whose bytes end here.
    tokens: Vec<u32>,
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
    pub fn new(tokenizer: &Tokenizer, size: usize) -> Self {
        let byte_level = tokenizer
            .get_decoder()
            .and_then(|d| serde_json::to_string(d).ok())
            .is_some_and(|d| d.contains("\"ByteLevel\""));
        let inverse: std::collections::HashMap<char, u8> = byte_level_alphabet()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let specials: std::collections::HashSet<u32> = tokenizer
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| id)
            .collect();
        let bytes: Vec<Option<Box<[u8]>>> = (0..size as u32)
            .map(|id| {
                if specials.contains(&id) {
                    return None;
                }
                let piece = tokenizer.id_to_token(id)?;
                let bytes: Vec<u8> = if byte_level {
                    piece
                        .chars()
                        .map(|c| inverse.get(&c).copied())
                        .collect::<Option<_>>()?
                } else if let Some(hex) =
                    piece.strip_prefix("<0x").and_then(|p| p.strip_suffix('>'))
                {
                    vec![u8::from_str_radix(hex, 16).ok()?]
                } else {
                    // SentencePiece: U+2581 stands for a space.
                    piece.replace('\u{2581}', " ").into_bytes()
                };
                (!bytes.is_empty()).then(|| bytes.into_boxed_slice())
            })
            .collect();
        let longest = bytes
            .iter()
            .flatten()
            .map(|b| b.len() as u32)
            .max()
            .unwrap_or(0);
        let mut vocab = Self {
            bytes,
            trie: vec![TrieNode::default()],
            quote_below: Vec::new(),
            longest,
            string_content: OnceLock::new(),
        };
        vocab.build_trie();
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
            self.bytes
                .iter()
                .map(|b| {
                    b.as_deref()
                        .is_some_and(|b| !b.contains(&b'"') && open.allows(&g, b))
                })
                .collect()
        })
    }

    fn build_trie(&mut self) {
        for (id, bytes) in self.bytes.iter().enumerate() {
            let Some(bytes) = bytes else { continue };
            let mut at = 0usize;
            for &b in bytes.iter() {
                let next = match self.trie[at].children.binary_search_by_key(&b, |c| c.0) {
                    Ok(i) => self.trie[at].children[i].1 as usize,
                    Err(i) => {
                        self.trie.push(TrieNode::default());
                        let child = self.trie.len() - 1;
                        self.trie[at].children.insert(i, (b, child as u32));
                        child
                    }
                };
                at = next;
            }
            self.trie[at].tokens.push(id as u32);
        }
        // A child comes after its parent in the arena: children first, from the end.
        let mut below = vec![false; self.trie.len()];
        for at in (0..self.trie.len()).rev() {
            let node = &self.trie[at];
            below[at] = node.tokens.iter().any(|&t| {
                self.bytes[t as usize]
                    .as_deref()
                    .is_some_and(|b| b.contains(&b'"'))
            }) || node.children.iter().any(|&(_, c)| below[c as usize]);
        }
        self.quote_below = below;
    }

    /// The bytes of token `id` (`None` for a special token or an id past the vocabulary).
    pub fn bytes(&self, id: u32) -> Option<&[u8]> {
        self.bytes.get(id as usize)?.as_deref()
    }

    /// The most bytes one token writes.
    pub(crate) fn longest(&self) -> u32 {
        self.longest
    }

    /// Number of token ids.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Marks in `allowed` (one flag per token id, cleared first) every token `m` allows next.
    pub(crate) fn mask(&self, g: &Grammar, m: &Matcher, allowed: &mut Vec<bool>) {
        allowed.clear();
        if m.in_free_string(g, self.longest) {
            allowed.extend_from_slice(self.string_content());
            self.walk(0, g, m, allowed, &mut Vec::new(), 0, true);
        } else {
            allowed.resize(self.bytes.len(), false);
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
        for &(b, child) in &self.trie[at].children {
            if quotes_only && !self.quote_below[child as usize] {
                continue;
            }
            let (mut next, mut spare) = std::mem::take(&mut scratch[depth]);
            next.set_fed(m, g, b, &mut spare);
            if !next.is_dead() {
                let node = &self.trie[child as usize];
                for &t in &node.tokens {
                    allowed[t as usize] = true;
                }
                self.walk(
                    child as usize,
                    g,
                    &next,
                    allowed,
                    scratch,
                    depth + 1,
                    quotes_only,
                );
            }
            scratch[depth] = (next, spare);
        }
    }
}
