//! The prefix cache: the KV cache of a sequence that left the batch stays in its (now free) slot
//! with the tokens it holds, and a new request whose prompt starts with the same tokens (the
//! next turn of a conversation, or another conversation with the same system prompt) runs only
//! the rest of its prompt. Free slots are the cache's room: a slot a new sequence needs loses
//! its entry, oldest first, so the cache costs no memory beyond the batch's own. Running
//! sequences are searched too (their positions so far are final): requests arriving together
//! on one system prompt compute it once, not once each.
//!
//! This module is the bookkeeping (which free slot holds which tokens, which entry to reuse or
//! evict); the scheduler moves the KV data as it says.

/// Tokens shorter than this are not worth reusing (a copy of the slot costs more than running
/// them).
pub(crate) const MIN_REUSE: usize = 8;

/// What a free slot holds.
#[derive(Debug, Clone)]
struct Entry {
    tokens: Vec<u32>,
    /// When it was stored or last reused (a counter), for eviction.
    used: u64,
}

/// One entry per KV slot; only free slots have one.
#[derive(Debug, Default)]
pub(crate) struct PrefixCache {
    slots: Vec<Option<Entry>>,
    clock: u64,
}

/// Where a new sequence's prompt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reuse {
    /// The slot holding the prefix: a free one, or a running sequence's.
    pub(crate) from: usize,
    /// Positions to reuse.
    pub(crate) len: usize,
}

/// How to free the slot a new sequence takes, keeping its entry: copy `len` positions of it to
/// slot `to` (whose entry, if any, is evicted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keep {
    pub(crate) to: usize,
    pub(crate) len: usize,
}

impl PrefixCache {
    pub(crate) fn new(slots: usize) -> Self {
        Self {
            slots: vec![None; slots],
            clock: 0,
        }
    }

    /// Slot `slot` (free now) holds the cache of `tokens`.
    pub(crate) fn store(&mut self, slot: usize, tokens: Vec<u32>) {
        self.clock += 1;
        if let Some(e) = self.slots.get_mut(slot) {
            *e = (!tokens.is_empty()).then_some(Entry {
                tokens,
                used: self.clock,
            });
        }
    }

    /// Slot `slot`'s data is no longer what its entry says.
    pub(crate) fn forget(&mut self, slot: usize) {
        if let Some(e) = self.slots.get_mut(slot) {
            *e = None;
        }
    }

    /// The longest cached prefix of `prompt` among the free slots `free..` and the running
    /// sequences (`running[i]`: the tokens slot `i` holds so far), leaving at least one prompt
    /// token to run (its logits are the first token's); `None` below [`MIN_REUSE`]. On a tie
    /// slot `free`'s own entry wins (no copy), then the lowest slot.
    pub(crate) fn find(&self, free: usize, prompt: &[u32], running: &[&[u32]]) -> Option<Reuse> {
        let most = prompt.len().saturating_sub(1);
        let cached = self
            .slots
            .iter()
            .enumerate()
            .skip(free)
            .filter_map(|(i, e)| Some((i, e.as_ref()?.tokens.as_slice())));
        let (from, len) = running
            .iter()
            .take(free)
            .copied()
            .enumerate()
            .chain(cached)
            .map(|(i, tokens)| (i, common_prefix(tokens, prompt).min(most)))
            .max_by_key(|&(i, len)| (len, i == free, std::cmp::Reverse(i)))?;
        (len >= MIN_REUSE).then_some(Reuse { from, len })
    }

    /// Slot `slot` is about to hold a new sequence whose prefix comes from `reuse` (if any):
    /// what to copy so that `slot`'s own entry survives, into an empty or the least recently
    /// used other free slot (`None` when it has no entry, or no better place exists). The
    /// entries are updated as if the copy was done.
    pub(crate) fn make_room(&mut self, slot: usize, reuse: Option<Reuse>) -> Option<Keep> {
        self.clock += 1;
        if let Some(r) = reuse
            && let Some(Some(e)) = self.slots.get_mut(r.from)
        {
            e.used = self.clock;
        }
        let entry = self.slots.get_mut(slot)?.take()?;
        // Reused whole in place (the next turn of the same conversation): the new sequence
        // extends it, nothing to keep.
        if reuse.is_some_and(|r| r.from == slot && r.len == entry.tokens.len()) {
            return None;
        }
        let source = reuse.map(|r| r.from);
        let (to, victim) = self
            .slots
            .iter()
            .enumerate()
            .skip(slot + 1)
            .filter(|(i, _)| Some(*i) != source)
            .map(|(i, e)| (i, e.as_ref().map_or(0, |e| e.used)))
            .min_by_key(|&(_, used)| used)?;
        if victim >= entry.used {
            return None; // everything else is fresher: the entry goes
        }
        let len = entry.tokens.len();
        self.slots[to] = Some(entry);
        Some(Keep { to, len })
    }
}

/// Length of the common prefix of `a` and `b`.
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_is_found_leaving_a_token_to_run() {
        let mut c = PrefixCache::new(4);
        let base: Vec<u32> = (0..20).collect();
        c.store(2, base[..12].to_vec());
        c.store(3, base.clone());
        // Slots below `free` are running: only what they hold now is offered.
        assert_eq!(c.find(4, &base, &[]), None);
        assert_eq!(c.find(2, &base, &[]), Some(Reuse { from: 3, len: 19 }));
        let mut other = base[..10].to_vec();
        other.push(99);
        assert_eq!(c.find(2, &other, &[]), Some(Reuse { from: 2, len: 10 }));
        assert_eq!(
            c.find(2, &[0, 1, 2, 3, 4, 5, 6, 50], &[]),
            None,
            "under MIN_REUSE"
        );
    }

    #[test]
    fn a_running_sequence_shares_what_it_holds_so_far() {
        let mut c = PrefixCache::new(4);
        let system: Vec<u32> = (100..130).collect();
        let ask = |q: u32| [system.as_slice(), &[q, q + 1]].concat();
        // Slot 0 runs on the system prompt and has generated two tokens; slot 1 runs something
        // else. A new prompt on the same system prompt copies it from slot 0.
        let first = [ask(1).as_slice(), &[7, 8]].concat();
        let other: Vec<u32> = (0..40).collect();
        let running = [first.as_slice(), other.as_slice()];
        assert_eq!(
            c.find(2, &ask(5), &running),
            Some(Reuse { from: 0, len: 30 })
        );
        // The same question again reuses the question too, never the last prompt token.
        assert_eq!(
            c.find(2, &ask(1), &running),
            Some(Reuse { from: 0, len: 31 })
        );
        // A free slot's entry as long as a running one's: the new slot's own entry wins (no
        // copy), else the lowest slot.
        c.store(2, system.clone());
        assert_eq!(
            c.find(2, &ask(5), &running),
            Some(Reuse { from: 2, len: 30 })
        );
        c.forget(2);
        c.store(3, system.clone());
        assert_eq!(
            c.find(2, &ask(5), &running),
            Some(Reuse { from: 0, len: 30 })
        );
        // Slots `free..` are never read from `running` (they are being placed, not run).
        assert_eq!(
            c.find(0, &ask(5), &running),
            Some(Reuse { from: 3, len: 30 })
        );
        // A running sequence's whole prompt: all but its last token.
        assert_eq!(
            c.find(2, &other, &running),
            Some(Reuse { from: 1, len: 39 })
        );
    }

    #[test]
    fn room_keeps_the_fresher_entry_and_evicts_the_oldest() {
        let mut c = PrefixCache::new(4);
        c.store(1, vec![1; 10]); // oldest
        c.store(2, vec![2; 10]);
        c.store(3, vec![3; 10]);
        c.forget(1);
        c.store(1, vec![1; 10]); // now the newest
        // A new sequence takes slot 1: its entry moves to the least recently used free slot
        // after it.
        let keep = c.make_room(1, None).expect("slot 1's entry is kept");
        assert_eq!(
            keep,
            Keep { to: 2, len: 10 },
            "slot 2 is the least recent after 1"
        );
        assert_eq!(c.find(2, &[1; 11], &[]).map(|r| r.from), Some(2));
        assert_eq!(
            c.find(2, &[2; 11], &[]),
            None,
            "slot 2's old entry was evicted"
        );
        // An entry older than every other free slot's is dropped instead of copied.
        let mut c = PrefixCache::new(3);
        c.store(0, vec![7; 9]);
        c.store(1, vec![8; 9]);
        c.store(2, vec![9; 9]);
        assert_eq!(c.make_room(0, None), None);
        assert_eq!(c.find(0, &[7; 10], &[]), None);
        // The source of a reuse is never the place an entry moves to.
        let mut c = PrefixCache::new(3);
        c.store(2, vec![5; 9]);
        c.store(0, vec![4; 9]);
        let reuse = c.find(0, &[5; 10], &[]);
        assert_eq!(reuse, Some(Reuse { from: 2, len: 9 }));
        assert_eq!(c.make_room(0, reuse), Some(Keep { to: 1, len: 9 }));
        // The next turn of the same conversation reuses its slot whole: nothing is copied.
        let mut c = PrefixCache::new(2);
        c.store(0, vec![3; 9]);
        let reuse = c.find(0, &[3; 12], &[]);
        assert_eq!(reuse, Some(Reuse { from: 0, len: 9 }));
        assert_eq!(c.make_room(0, reuse), None);
    }
}
