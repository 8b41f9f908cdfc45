//! Incremental detokenisation: text deltas that never split a UTF-8 character or a merge.

use crate::model::TextTokenizer;

/// Turns a growing list of token ids into text deltas.
#[derive(Debug, Clone, Default)]
pub(crate) struct Detokenizer {
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl Detokenizer {
    /// Adds a token; returns the text it completes (possibly empty, e.g. half a character).
    pub(crate) fn push(&mut self, tok: &TextTokenizer, id: u32) -> String {
        self.ids.push(id);
        // Decoding a short window with some context keeps byte-level merges and spaces right.
        let before = tok.decode(&self.ids[self.prefix..self.read]);
        let now = tok.decode(&self.ids[self.prefix..]);
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') && now.starts_with(&before) {
            let delta = now[before.len()..].to_string();
            self.prefix = self.read;
            self.read = self.ids.len();
            delta
        } else {
            String::new()
        }
    }
}
