//! A tool-using answer read as it is generated, so that its calls stream as deltas: under
//! `auto` the first character says whether it is a call (`{`) or text; a call's function name is
//! sent once it is whole, then its arguments as the model writes them, up to the end of their
//! JSON value (the object's closing `}` after them is not theirs). The grammar holds the answer
//! to `{"name": <name>, "arguments": <value>}` in that order (or, for a named function, to the
//! arguments alone), so a name is a plain string (no escapes) and the arguments start after
//! `"arguments"` and its colon; several calls come one object per line, so a call is over at its
//! object's `}`, and a `{` after the newline opens the next. The whole answer is read by the same
//! scanner, so a stream's deltas join into exactly the calls the answer would have been.

/// What a piece of the answer adds to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// Text of an answer that is not a call.
    Text(String),
    /// Call `index`'s function name, once (its first delta).
    Name(u32, String),
    /// More of call `index`'s arguments.
    Arguments(u32, String),
}

/// The scanner of one answer: its calls, in order.
#[derive(Debug)]
pub(super) struct CallStream {
    /// The calls read whole, each with its name and arguments.
    done: Vec<(String, String)>,
    /// The call (or text) being read.
    current: Call,
    /// Whether another call may follow a whole one.
    parallel: bool,
}

impl CallStream {
    /// For an answer that is calls with their names (`required`), calls or text (`auto`,
    /// `text_allowed`), or a named function's arguments (`named`: its name sent at once; one
    /// call); `parallel`: several calls, one per line.
    pub(super) fn new(
        named: Option<&str>,
        text_allowed: bool,
        parallel: bool,
    ) -> (Self, Vec<Piece>) {
        let (current, first) = Call::new(named, text_allowed);
        let s = Self {
            done: Vec::new(),
            current,
            parallel: parallel && named.is_none(),
        };
        (s, first.into_iter().map(|p| p.at(0)).collect())
    }

    /// Takes the next piece of the answer; returns what it adds to the stream.
    pub(super) fn push(&mut self, piece: &str) -> Vec<Piece> {
        let mut out: Vec<Piece> = self
            .current
            .push(piece)
            .into_iter()
            .map(|p| p.at(self.done.len() as u32))
            .collect();
        while self.parallel
            && let Some(start) = self.current.next_call()
            && let Some(call) = self.current.call()
        {
            let rest = self.current.text.split_off(start);
            self.done.push(call);
            self.current = Call::new(None, false).0;
            self.current.mode = Mode::Call;
            let index = self.done.len() as u32;
            out.extend(self.current.push(&rest).into_iter().map(|p| p.at(index)));
        }
        out
    }

    /// The answer read so far is calls, every one whole: their names and arguments.
    pub(super) fn calls(&self) -> Option<Vec<(String, String)>> {
        let last = self.current.call()?;
        let mut calls = self.done.clone();
        calls.push(last);
        Some(calls)
    }
}

impl Piece {
    /// The piece of call `index` (text stays text).
    fn at(self, index: u32) -> Self {
        match self {
            Self::Name(_, name) => Self::Name(index, name),
            Self::Arguments(_, args) => Self::Arguments(index, args),
            text @ Self::Text(_) => text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but whitespace yet (`auto`: a call or text).
    Undecided,
    Text,
    Call,
}

/// The scanner of one call (or of an answer in text).
#[derive(Debug)]
struct Call {
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

impl Call {
    /// For an answer that is a call with its name (`required`), a call or text (`auto`,
    /// `text_allowed`), or a named function's arguments (`named`: its name sent at once).
    fn new(named: Option<&str>, text_allowed: bool) -> (Self, Vec<Piece>) {
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
                .map(|n| vec![Piece::Name(0, n.into())])
                .unwrap_or_default(),
        )
    }

    /// Takes the next piece of the answer; returns what it adds to the stream.
    fn push(&mut self, piece: &str) -> Vec<Piece> {
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
                out.push(Piece::Arguments(0, self.text[from..end].to_string()));
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
            out.push(Piece::Name(0, name.clone()));
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
                    // (After the value's first character: a value split over pieces ends at
                    // the space after it, whichever piece brings it.)
                    b if b.is_ascii_whitespace()
                        && self.depth == 0
                        && self.args_start.is_some_and(|start| i > start) =>
                    {
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

    /// Where the next call starts in `text`: this call's arguments are whole, its object closed
    /// (`}`), and the `{` after the newline written.
    fn next_call(&self) -> Option<usize> {
        if self.mode != Mode::Call || !self.args_done || !self.with_name {
            return None;
        }
        let after = self.args_read;
        let close = after + self.text[after..].find('}')? + 1;
        self.text[close..].find('{').map(|i| close + i)
    }

    /// The answer read so far is a call whose arguments are whole: its name and arguments.
    fn call(&self) -> Option<(String, String)> {
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

    /// The names and arguments of call 0, and the text.
    fn joined(pieces: &[Piece]) -> (Vec<String>, String, String) {
        let (calls, text) = joined_calls(pieces);
        let names = calls.iter().map(|c| c.0.clone()).collect();
        (
            names,
            calls.first().map(|c| c.1.clone()).unwrap_or_default(),
            text,
        )
    }

    /// Every call's name and arguments, by index, and the text.
    fn joined_calls(pieces: &[Piece]) -> (Vec<(String, String)>, String) {
        let (mut calls, mut text) = (Vec::<(String, String)>::new(), String::new());
        for p in pieces {
            match p {
                Piece::Name(i, n) => {
                    assert_eq!(*i as usize, calls.len(), "a name opens the next call");
                    calls.push((n.clone(), String::new()));
                }
                Piece::Arguments(i, a) => {
                    // A named function's name is sent before the answer (not fed here).
                    if calls.is_empty() {
                        calls.push((String::new(), String::new()));
                    }
                    calls[*i as usize].1.push_str(a);
                }
                Piece::Text(t) => text.push_str(t),
            }
        }
        (calls, text)
    }

    #[test]
    fn a_call_streams_its_name_once_then_exactly_its_arguments_in_any_pieces() {
        let answer = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa}ris \\\"x\\\"\", \"days\": [1, {\"a\": 2}]}\n}";
        for size in 1..12 {
            let (mut s, first) = CallStream::new(None, true, true);
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
                s.calls(),
                Some(vec![("get_weather".into(), args.clone())]),
                "{size}"
            );
        }
    }

    #[test]
    fn text_under_auto_streams_as_text_and_is_no_call() {
        let (mut s, _) = CallStream::new(None, true, true);
        let pieces = feed(&mut s, "  Paris is sunny.", 3);
        let (names, args, text) = joined(&pieces);
        assert!(names.is_empty() && args.is_empty());
        assert_eq!(text, "  Paris is sunny.");
        assert!(!s.current.is_call() && s.calls().is_none());
    }

    #[test]
    fn a_named_functions_answer_is_its_arguments_and_a_cut_one_is_no_call() {
        let (mut s, first) = CallStream::new(Some("f"), false, true);
        assert_eq!(first, [Piece::Name(0, "f".into())]);
        let pieces = feed(&mut s, " {\"x\": 1.5e3}", 2);
        assert_eq!(joined(&pieces).1, "{\"x\": 1.5e3}");
        assert_eq!(
            s.calls(),
            Some(vec![(String::new(), "{\"x\": 1.5e3}".into())])
        );

        let (mut cut, _) = CallStream::new(None, false, true);
        feed(&mut cut, "{\"name\": \"f\", \"arguments\": {\"x\": ", 4);
        assert!(
            cut.current.is_call() && cut.calls().is_none(),
            "arguments not whole"
        );
    }

    #[test]
    fn several_calls_stream_each_under_its_index_in_any_pieces() {
        let answer = "{\"name\": \"weather\", \"arguments\": {\"city\": \"Pa}ris\"}}\n{\"name\": \"time\", \"arguments\": 7 }\n{\"name\":\"weather\",\"arguments\":{}}";
        let want = vec![
            ("weather".to_string(), "{\"city\": \"Pa}ris\"}".to_string()),
            ("time".to_string(), "7".to_string()),
            ("weather".to_string(), "{}".to_string()),
        ];
        for size in 1..16 {
            let (mut s, _) = CallStream::new(None, true, true);
            let pieces = feed(&mut s, answer, size);
            let (calls, text) = joined_calls(&pieces);
            assert_eq!(calls, want, "{size}");
            assert!(text.is_empty(), "{size}");
            assert_eq!(s.calls(), Some(want.clone()), "{size}");
        }
        // A second call cut short: the answer is not calls (its first one went out whole).
        let (mut s, _) = CallStream::new(None, false, true);
        let cut = &answer[..answer.find("7").expect("the second call")];
        let (calls, _) = joined_calls(&feed(&mut s, cut, 5));
        assert_eq!(calls.len(), 2);
        assert!(s.calls().is_none());
        // Not parallel: the first call is the answer, whatever follows.
        let (mut one, _) = CallStream::new(None, false, false);
        let (calls, _) = joined_calls(&feed(&mut one, answer, 7));
        assert_eq!(calls, want[..1]);
        assert_eq!(one.calls(), Some(want[..1].to_vec()));
    }
}
