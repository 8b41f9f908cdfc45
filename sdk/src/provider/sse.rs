//! A minimal server-sent-events reader: enough for OpenAI streams (`data:` lines, blank-line
//! separated, ended by `data: [DONE]`).

/// Turns the bytes of a stream into event payloads, holding back a UTF-8 character split
/// between two network chunks until its last byte arrives.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    bytes: Vec<u8>,
    text: String,
}

impl Reader {
    /// Adds a network chunk; returns the payloads of the events it completes.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        self.bytes.extend_from_slice(chunk);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            // An incomplete character at the end waits; invalid bytes are replaced.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.bytes.len(),
        };
        let head: Vec<u8> = self.bytes.drain(..valid).collect();
        self.text.push_str(&String::from_utf8_lossy(&head));
        drain_events(&mut self.text)
    }
}

/// Splits complete events off the front of `buf`, returning their `data` payloads in order.
///
/// An event's data lines are joined with `\n` (per the SSE spec); comments and other fields are
/// skipped. Bytes of an unfinished event stay in `buf` for the next call.
pub(crate) fn drain_events(buf: &mut String) -> Vec<String> {
    let mut events = Vec::new();
    while let Some(end) = find_event_end(buf) {
        let (raw, rest_start) = (buf[..end.0].to_string(), end.1);
        buf.drain(..rest_start);
        let data: Vec<&str> = raw
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if !data.is_empty() {
            events.push(data.join("\n"));
        }
    }
    events
}

/// Finds the first blank line: returns (end of event, start of the rest).
fn find_event_end(buf: &str) -> Option<(usize, usize)> {
    let lf = buf.find("\n\n").map(|i| (i, i + 2));
    let crlf = buf.find("\r\n\r\n").map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_chunks_survives() {
        let event = "data: {\"content\":\"caf\u{e9} \u{1F600}\"}\n\n".as_bytes();
        let mut reader = Reader::default();
        let mut events = Vec::new();
        for byte in event {
            events.extend(reader.push(std::slice::from_ref(byte)));
        }
        assert_eq!(events, vec!["{\"content\":\"caf\u{e9} \u{1F600}\"}"]);
    }

    #[test]
    fn splits_complete_events_and_keeps_the_rest() {
        let mut buf =
            String::from(": keep-alive\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\ndata: {\"b\"");
        assert_eq!(drain_events(&mut buf), vec!["{\"a\":1}", "[DONE]"]);
        assert_eq!(buf, "data: {\"b\"");
        buf.push_str(":2}\r\n\r\n");
        assert_eq!(drain_events(&mut buf), vec!["{\"b\":2}"]);
        assert!(buf.is_empty());
    }
}
