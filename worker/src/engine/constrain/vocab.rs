//! The bytes each token writes, and a trie of them: the mask of tokens a [`Matcher`] allows is
//! one walk of the trie, where a byte the grammar refuses cuts off every token that starts
//! with it (inside a key or after a value, nearly all of the vocabulary at the first byte).

use tokenizers::Tokenizer;

use super::{grammar::Grammar, matcher::Matcher};

/// The vocabulary as bytes.
#[derive(Debug)]
pub struct Vocab {
    /// Per token id: its bytes, or `None` for special tokens (never part of an answer).
    bytes: Vec<Option<Box<[u8]>>>,
    trie: Vec<TrieNode>,
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
        let bytes = (0..size as u32)
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
        let mut vocab = Self {
            bytes,
            trie: vec![TrieNode::default()],
        };
        vocab.build_trie();
        vocab
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
    }

    /// The bytes of token `id` (`None` for a special token or an id past the vocabulary).
    pub fn bytes(&self, id: u32) -> Option<&[u8]> {
        self.bytes.get(id as usize)?.as_deref()
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
        allowed.resize(self.bytes.len(), false);
        self.walk(0, g, m, allowed);
    }

    fn walk(&self, at: usize, g: &Grammar, m: &Matcher, allowed: &mut [bool]) {
        for &(b, child) in &self.trie[at].children {
            let mut next = m.clone();
            next.feed_byte(g, b);
            if next.is_dead() {
                continue;
            }
            let node = &self.trie[child as usize];
            for &t in &node.tokens {
                allowed[t as usize] = true;
            }
            self.walk(child as usize, g, &next, allowed);
        }
    }
}
