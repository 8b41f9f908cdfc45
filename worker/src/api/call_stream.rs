//! A tool-using answer read as it is generated, so that its call streams as deltas: under
//! `auto` the first character says whether it is a call (`{`) or text; a call's function name is
//! sent once it is whole, then its arguments as the model writes them, up to the end of their
//! JSON value (the object's closing `}` after them is not theirs). The grammar holds the answer
//! to `{"name": <name>, "arguments": <value>}` in that order (or, for a named function, to the
//! arguments alone), so a name is a plain string (no escapes) and the arguments start after
//! `"arguments"` and its colon. The whole answer is read by the same scanner, so a stream's
//! deltas join into exactly the call the answer would have been.

/// What a piece of the answer adds to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// Text of an answer that is not a call.
    Text(String),
    /// The call's function name, once.
    Name(String),
    /// More of the call's arguments.
    Arguments(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but whitespace yet (`auto`: a call or text).
    Undecided,
    Text,
    Call,
}

/// The scanner of one answer.
#[derive(Debug)]
pub(super) struct CallStream {
    mode: Mode,
    text: String,
    /// Under `required`/`auto`: the call is written with its name; a named function's answer is
    /// its arguments alone.
    with_name: bool,
    /// Whether text is allowed (`auto`).
    text_allowed: bool,
    /// The call's function name, once whole (a named function's is not in the answer).
    name: Option<String>,
    /// Where the arguments' value starts in `text`, once known.
    args_start: Option<usize>,
    /// How far the arguments were read (and sent).
    args_read: usize,
    /// The arguments' value is whole.
    args_done: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl CallStream {
    /// For an answer that is a call with its name (`required`), a call or text (`auto`,
    /// `text_allowed`), or a named function's arguments (`named`: its name sent at once).
    pub(super) fn new(named: Option<&str>, text_allowed: bool) -> (Self, Vec<Piece>) {
        let s = Self {
            mode: if named.is_some() {
                Mode::Call
            } else {
                Mode::Undecided
            },
            text: String::new(),
            with_name: named.is_none(),
            text_allowed,
            name: None,
            args_start: None,
            args_read: 0,
            args_done: false,
            depth: 0,
            in_string: false,
            escaped: false,
        };
        (
            s,
            named
                .map(|n| vec![Piece::Name(n.into())])
                .unwrap_or_default(),
        )
    }

    /// Takes the next piece of the answer; returns what it adds to the stream.
    pub(super) fn push(&mut self, piece: &str) -> Vec<Piece> {
        self.text.push_str(piece);
        let mut out = Vec::new();
        if self.mode == Mode::Undecided {
            match self.text.trim_start().chars().next() {
                None => return out,
                Some('{') => self.mode = Mode::Call,
                Some(_) if self.text_allowed => {
                    self.mode = Mode::Text;
                    out.push(Piece::Text(self.text.clone()));
                    return out;
                }
                // The grammar allows nothing else; read it as a call that never completes.
                Some(_) => self.mode = Mode::Call,
            }
        } else if self.mode == Mode::Text {
            out.push(Piece::Text(piece.to_string()));
            return out;
        }
        if self.args_start.is_none() {
            self.args_start = if self.with_name {
                self.find_name(&mut out)
            } else {
                self.text
                    .char_indices()
                    .find(|(_, c)| !c.is_whitespace())
                    .map(|(i, _)| i)
            };
        }
        if let Some(start) = self.args_start {
            let from = self.args_read.max(start);
            let end = self.scan(from);
            if end > from {
                out.push(Piece::Arguments(self.text[from..end].to_string()));
            }
            self.args_read = end;
        }
        out
    }

    /// Once the name and `"arguments":` are whole: sends the name, returns where the arguments'
    /// value starts (its first non-space character, once written).
    fn find_name(&mut self, out: &mut Vec<Piece>) -> Option<usize> {
        let t = &self.text;
        let key = t.find("\"name\"")? + "\"name\"".len();
        let open = key + t[key..].find('"')? + 1;
        let close = open + t[open..].find('"')?;
        if self.name.is_none() {
            let name = t[open..close].to_string();
            out.push(Piece::Name(name.clone()));
            self.name = Some(name);
        }
        let args = close + t[close..].find("\"arguments\"")? + "\"arguments\"".len();
        let colon = args + t[args..].find(':')? + 1;
        t[colon..]
            .char_indices()
            .find(|(_, c)| !c.is_whitespace())
            .map(|(i, _)| colon + i)
    }

    /// Reads the arguments' value from `from`; returns where what can be sent ends (the end of
    /// the text, or of the value once whole).
    fn scan(&mut self, from: usize) -> usize {
        if self.args_done {
            return from;
        }
        let bytes = self.text.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            let b = bytes[i];
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => {
                        self.in_string = false;
                        if self.depth == 0 {
                            self.args_done = true;
                            return i + 1;
                        }
                    }
                    _ => {}
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' if self.depth > 0 => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            self.args_done = true;
                            return i + 1;
                        }
                    }
                    // A bare value (number, literal) ends where the object goes on.
                    b'}' | b']' | b',' if self.depth == 0 => {
                        self.args_done = true;
                        return i;
                    }
                    b if b.is_ascii_whitespace() && self.depth == 0 && i > from => {
                        self.args_done = true;
                        return i;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        i
    }

    /// The answer read so far is a call whose arguments are whole: its name and arguments.
    pub(super) fn call(&self) -> Option<(String, String)> {
        if self.mode != Mode::Call || !self.args_done {
            return None;
        }
        let start = self.args_start?;
        let args = self.text[start..self.args_read].to_string();
        serde_json::from_str::<serde_json::Value>(&args).ok()?;
        Some((self.name.clone().unwrap_or_default(), args))
    }

    /// Whether the answer is a call (so far).
    #[cfg(test)]
    fn is_call(&self) -> bool {
        self.mode == Mode::Call
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `answer` in pieces of `size` bytes (on character boundaries); returns the pieces.
    fn feed(s: &mut CallStream, answer: &str, size: usize) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut rest = answer;
        while !rest.is_empty() {
            let mut cut = size.min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            out.extend(s.push(&rest[..cut]));
            rest = &rest[cut..];
        }
        out
    }

    fn joined(pieces: &[Piece]) -> (Vec<String>, String, String) {
        let (mut names, mut args, mut text) = (Vec::new(), String::new(), String::new());
        for p in pieces {
            match p {
                Piece::Name(n) => names.push(n.clone()),
                Piece::Arguments(a) => args.push_str(a),
                Piece::Text(t) => text.push_str(t),
            }
        }
        (names, args, text)
    }

    #[test]
    fn a_call_streams_its_name_once_then_exactly_its_arguments_in_any_pieces() {
        let answer = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa}ris \\\"x\\\"\", \"days\": [1, {\"a\": 2}]}\n}";
        for size in 1..12 {
            let (mut s, first) = CallStream::new(None, true);
            assert!(first.is_empty());
            let pieces = feed(&mut s, answer, size);
            let (names, args, text) = joined(&pieces);
            assert_eq!(names, ["get_weather"], "{size}");
            assert_eq!(
                args, "{\"city\": \"Pa}ris \\\"x\\\"\", \"days\": [1, {\"a\": 2}]}",
                "{size}"
            );
            assert!(text.is_empty());
            assert_eq!(
                s.call(),
                Some(("get_weather".into(), args.clone())),
                "{size}"
            );
        }
    }

    #[test]
    fn text_under_auto_streams_as_text_and_is_no_call() {
        let (mut s, _) = CallStream::new(None, true);
        let pieces = feed(&mut s, "  Paris is sunny.", 3);
        let (names, args, text) = joined(&pieces);
        assert!(names.is_empty() && args.is_empty());
        assert_eq!(text, "  Paris is sunny.");
        assert!(!s.is_call() && s.call().is_none());
    }

    #[test]
    fn a_named_functions_answer_is_its_arguments_and_a_cut_one_is_no_call() {
        let (mut s, first) = CallStream::new(Some("f"), false);
        assert_eq!(first, [Piece::Name("f".into())]);
        let pieces = feed(&mut s, " {\"x\": 1.5e3}", 2);
        assert_eq!(joined(&pieces).1, "{\"x\": 1.5e3}");
        assert_eq!(s.call(), Some((String::new(), "{\"x\": 1.5e3}".into())));

        let (mut cut, _) = CallStream::new(None, false);
        feed(&mut cut, "{\"name\": \"f\", \"arguments\": {\"x\": ", 4);
        assert!(cut.is_call() && cut.call().is_none(), "arguments not whole");
    }
}
