//! Stop sequences on streamed text: text is released only once it cannot be the start of a stop.

/// Watches generated text for stop sequences.
#[derive(Debug, Clone, Default)]
pub(crate) struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Adds `delta`; returns the text now safe to send and whether a stop sequence was reached
    /// (the stop itself and anything after it are never sent).
    pub(crate) fn push(&mut self, delta: &str) -> (String, bool) {
        self.pending.push_str(delta);
        if self.stops.is_empty() {
            return (std::mem::take(&mut self.pending), false);
        }
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        let hold = self.held_suffix();
        let split = self.pending.len() - hold;
        let out = self.pending[..split].to_string();
        self.pending.drain(..split);
        (out, false)
    }

    /// Text held back at the end of generation (it was not a stop after all).
    pub(crate) fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Bytes at the end of `pending` that begin some stop sequence (on a char boundary).
    fn held_suffix(&self) -> usize {
        let p = &self.pending;
        let mut best = 0;
        for s in &self.stops {
            let max = s.len().saturating_sub(1).min(p.len());
            for len in (best + 1..=max).rev() {
                let start = p.len() - len;
                if p.is_char_boundary(start) && s.starts_with(&p[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_across_deltas() {
        let mut m = StopMatcher::new(vec!["\n\nUser".into()]);
        assert_eq!(m.push("Hello"), ("Hello".into(), false));
        assert_eq!(m.push(" world\n"), (" world".into(), false));
        assert_eq!(m.push("\nUs"), (String::new(), false));
        assert_eq!(m.push("er: hi"), (String::new(), true));
    }

    #[test]
    fn releases_a_false_start() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("the E"), ("the ".into(), false));
        assert_eq!(m.push("nd"), ("End".into(), false));
        assert_eq!(m.push(" E"), (" ".into(), false));
        assert_eq!(m.flush(), "E");
    }

    #[test]
    fn no_stops_passes_through() {
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(m.push("abc"), ("abc".into(), false));
    }
}
