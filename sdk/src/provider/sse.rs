//! A minimal server-sent-events reader: enough for OpenAI streams (`data:` lines, blank-line
//! separated, ended by `data: [DONE]`).

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
