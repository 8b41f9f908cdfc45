//! A byte-at-a-time recogniser of a [`Grammar`]: which bytes may come next, and whether what has
//! come is a complete answer. Its state is a small set of stacks of frames (one per way of
//! reading the bytes so far: alternatives that share a prefix, such as enum values, are read
//! side by side until a byte tells them apart).

use super::grammar::{
    Grammar, MAX_EXP_DIGITS, MAX_FRAC_DIGITS, MAX_INDENT, MAX_INT_DIGITS, MAX_KEY_CHARS, Node,
    NodeId,
};

/// Deepest nesting of frames (objects in arrays in objects ...).
const MAX_DEPTH: usize = 64;
/// Most ways of reading at once; beyond it the last ones are dropped (never reached by the
/// schemas people write: each alternative dies at its first differing byte).
const MAX_STACKS: usize = 64;
/// The key-string pseudo node: a free key of an object.
const KEY: NodeId = NodeId::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ObjPhase {
    /// After `{`.
    Open,
    /// After `,`.
    Comma,
    /// After a key: `:` comes, then the value of declared key `prop` (or a free key's).
    Colon { prop: u16 },
    /// After a value: `,` or `}`.
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ArrPhase {
    Open,
    Comma,
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NumPhase {
    Sign,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl NumPhase {
    fn complete(self) -> bool {
        matches!(self, Self::Zero | Self::Int | Self::Frac | Self::ExpDigits)
    }
}

/// `prop` of [`ObjPhase::Colon`] for a free key.
const FREE_KEY: u16 = u16::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Frame {
    /// A value of this node comes (whitespace first, maybe).
    Value(NodeId),
    /// Inside a literal, `pos` bytes read.
    Lit { node: NodeId, pos: u32 },
    /// Inside a declared key, `pos` bytes of `props[prop].key` read.
    Key { node: NodeId, prop: u16, pos: u16 },
    /// Inside a string (after its `"`): `len` characters, an escape's state (0 none, 1 after
    /// `\`, 2..=5: hex digits of `\u` left + 1, 6: the second digit after a `D`, which must
    /// not start a surrogate), UTF-8 continuation bytes owed (see [`continuation`]).
    Str {
        node: NodeId,
        len: u32,
        esc: u8,
        utf8: u8,
    },
    /// Inside a number.
    Num {
        integer: bool,
        phase: NumPhase,
        digits: u8,
    },
    /// Inside an object: declared keys before `next` are written or left out.
    Obj {
        node: NodeId,
        next: u16,
        phase: ObjPhase,
    },
    /// Inside an array of `count` items so far.
    Arr {
        node: NodeId,
        count: u32,
        phase: ArrPhase,
    },
    /// After value `count` of a [`Node::Lines`] (whole); `open`: its newline is read, the next
    /// value's first byte comes.
    Lines {
        node: NodeId,
        count: u32,
        open: bool,
    },
    /// Inside free text: anything goes.
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Stack {
    frames: Vec<Frame>,
    /// The whitespace just read: 0 none, 1 a space, 2 + n a newline and n of indentation.
    ws: u8,
}

/// Where a constrained answer stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Matcher {
    stacks: Vec<Stack>,
}

/// The fewest and most characters of a string frame's node (a free key's: up to
/// [`MAX_KEY_CHARS`]); `None` for a node that is no string.
fn str_bounds(g: &Grammar, node: NodeId) -> Option<(u32, u32)> {
    match node {
        KEY => Some((0, MAX_KEY_CHARS)),
        _ => match g.node(node) {
            Node::String { min, max } => Some((*min, *max)),
            _ => None,
        },
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

impl Matcher {
    /// At the start of an answer to `g`.
    pub(crate) fn new(g: &Grammar) -> Self {
        Self {
            stacks: vec![Stack {
                frames: vec![Frame::Value(g.root)],
                ws: 0,
            }],
        }
    }

    /// No way of reading is left: the bytes fed break the grammar.
    pub(crate) fn is_dead(&self) -> bool {
        self.stacks.is_empty()
    }

    /// What was fed is a whole answer (it may end here).
    pub(crate) fn is_complete(&self) -> bool {
        self.stacks.iter().any(|s| match s.frames.as_slice() {
            [] | [Frame::Text] | [Frame::Lines { open: false, .. }] => true,
            [Frame::Num { phase, .. }] => phase.complete(),
            _ => false,
        })
    }

    /// What was fed is a whole answer and nothing may follow it (the last of as many lines as
    /// [`Node::Lines`] allows counts).
    pub(crate) fn is_finished(&self, g: &Grammar) -> bool {
        !self.stacks.is_empty()
            && self.stacks.iter().all(|s| match s.frames.as_slice() {
                [] => true,
                [
                    Frame::Lines {
                        node,
                        count,
                        open: false,
                    },
                ] => {
                    matches!(g.node(*node), Node::Lines { max, .. } if count >= max)
                }
                _ => false,
            })
    }

    /// This state with what cannot change which token may come next left out: a string's
    /// length is kept only while one token (at most `longest` bytes, so at most as many
    /// characters) could still meet a bound of it. Two states with the same canonical form allow
    /// the same tokens, so a mask computed for one serves the other (`Guide`'s cache): inside a
    /// long string every character would otherwise make a state of its own.
    pub(crate) fn canonical(&self, g: &Grammar, longest: u32) -> Self {
        let mut m = self.clone();
        for frame in m.stacks.iter_mut().flat_map(|s| s.frames.iter_mut()) {
            if let Frame::Str { node, len, .. } = frame {
                let Some((min, max)) = str_bounds(g, *node) else {
                    continue;
                };
                if *len >= min && max - (*len).min(max) > longest {
                    *len = min;
                }
            }
        }
        m
    }

    /// One way of reading, inside a string's body (no escape or UTF-8 sequence open) with room
    /// for any one token (`longest` bytes) before its bound: there a token without a `"` is
    /// allowed exactly when its bytes are valid string content, whatever the grammar around
    /// (`Vocab::mask` takes those from a table).
    pub(crate) fn in_free_string(&self, g: &Grammar, longest: u32) -> bool {
        let [stack] = self.stacks.as_slice() else {
            return false;
        };
        match stack.frames.last() {
            Some(&Frame::Str {
                node,
                len,
                esc: 0,
                utf8: 0,
            }) => str_bounds(g, node).is_some_and(|(_, max)| max - len.min(max) > longest),
            _ => false,
        }
    }

    /// Feeds `bytes`; false (and a dead matcher) when they break the grammar.
    pub(crate) fn feed(&mut self, g: &Grammar, bytes: &[u8]) -> bool {
        for &b in bytes {
            self.feed_byte(g, b);
            if self.stacks.is_empty() {
                return false;
            }
        }
        true
    }

    /// Whether `bytes` may come next (the matcher is left as it was).
    pub(crate) fn allows(&self, g: &Grammar, bytes: &[u8]) -> bool {
        self.clone().feed(g, bytes)
    }

    /// Becomes `parent` fed `b`, building in buffers this matcher and `spare` already hold: the
    /// vocabulary's trie walk makes one state per node, and once the buffers have grown it
    /// allocates nothing (a clone and a feed allocated three times per node).
    pub(crate) fn set_fed(&mut self, parent: &Self, g: &Grammar, b: u8, spare: &mut Self) {
        // `spare` takes the last state's stacks, whose frame buffers the copy then reuses.
        std::mem::swap(&mut self.stacks, &mut spare.stacks);
        spare.stacks.truncate(parent.stacks.len());
        let kept = spare.stacks.len();
        for (to, from) in spare.stacks.iter_mut().zip(&parent.stacks) {
            to.frames.clone_from(&from.frames);
            to.ws = from.ws;
        }
        spare.stacks.extend(parent.stacks[kept..].iter().cloned());
        self.stacks.clear();
        for s in spare.stacks.drain(..) {
            step(g, s, b, &mut self.stacks);
        }
        if self.stacks.len() > 1 {
            self.stacks.dedup();
            self.stacks.truncate(MAX_STACKS);
        }
    }

    pub(crate) fn feed_byte(&mut self, g: &Grammar, b: u8) {
        let stacks = std::mem::take(&mut self.stacks);
        let mut out = Vec::with_capacity(stacks.len());
        for s in stacks {
            step(g, s, b, &mut out);
        }
        if out.len() > 1 {
            out.dedup();
            out.truncate(MAX_STACKS);
        }
        self.stacks = out;
    }
}

/// Whitespace where the grammar allows it: one space, or a newline and at most
/// [`MAX_INDENT`] spaces or tabs (so a model may pretty-print, and cannot pad forever).
fn whitespace(mut s: Stack, b: u8, out: &mut Vec<Stack>) {
    s.ws = match (s.ws, b) {
        (0, b' ') => 1,
        (0, b'\n') => 2,
        (n @ 2.., b' ' | b'\t') if n - 2 < MAX_INDENT => n + 1,
        _ => return,
    };
    out.push(s);
}

fn push(mut s: Stack, frame: Frame, out: &mut Vec<Stack>) {
    if s.frames.len() < MAX_DEPTH {
        s.frames.push(frame);
        out.push(s);
    }
}

/// Feeds one byte to one way of reading; pushes what it becomes (none, one, or several).
fn step(g: &Grammar, mut s: Stack, b: u8, out: &mut Vec<Stack>) {
    let Some(&top) = s.frames.last() else {
        return; // a whole answer takes nothing more
    };
    let ws = is_ws(b);
    if !ws {
        s.ws = 0;
    }
    match top {
        Frame::Text => out.push(s),
        Frame::Lines { node, count, open } => {
            let Node::Lines { item, max } = *g.node(node) else {
                return;
            };
            match (open, b) {
                (false, b'\n') if count < max => {
                    *s.frames.last_mut().expect("top") = Frame::Lines {
                        node,
                        count,
                        open: true,
                    };
                    out.push(s);
                }
                (true, _) if !ws => {
                    *s.frames.last_mut().expect("top") = Frame::Lines {
                        node,
                        count: count + 1,
                        open: false,
                    };
                    start_value(g, s, item, b, out);
                }
                _ => {}
            }
        }
        Frame::Value(node) => {
            if ws {
                return whitespace(s, b, out);
            }
            s.frames.pop();
            start_value(g, s, node, b, out);
        }
        Frame::Lit { node, pos } => {
            let Node::Literal(lit) = g.node(node) else {
                return;
            };
            if lit.get(pos as usize) == Some(&b) {
                if pos as usize + 1 == lit.len() {
                    s.frames.pop();
                } else {
                    *s.frames.last_mut().expect("top") = Frame::Lit { node, pos: pos + 1 };
                }
                out.push(s);
            }
        }
        Frame::Key { node, prop, pos } => {
            let Node::Object(o) = g.node(node) else {
                return;
            };
            let key = &o.props[prop as usize].key;
            if key.get(pos as usize) == Some(&b) {
                if pos as usize + 1 == key.len() {
                    s.frames.pop();
                } else {
                    *s.frames.last_mut().expect("top") = Frame::Key {
                        node,
                        prop,
                        pos: pos + 1,
                    };
                }
                out.push(s);
            }
        }
        Frame::Str {
            node,
            len,
            esc,
            utf8,
        } => {
            let Some((min, max)) = str_bounds(g, node) else {
                return;
            };
            let next = |len, esc, utf8| Frame::Str {
                node,
                len,
                esc,
                utf8,
            };
            let frame = if utf8 > 0 {
                if !continuation(utf8, b) {
                    return;
                }
                next(len, 0, (utf8 & 0x0F) - 1)
            } else if esc == 1 {
                match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => next(len, 0, 0),
                    b'u' => next(len, 5, 0),
                    _ => return,
                }
            } else if esc == 6 {
                // `\uD8..`-`\uDF..` are halves of a surrogate pair, which a lone escape
                // cannot be.
                if !(b'0'..=b'7').contains(&b) {
                    return;
                }
                next(len, 3, 0)
            } else if esc >= 2 {
                if !b.is_ascii_hexdigit() {
                    return;
                }
                let esc = match esc {
                    5 if b.eq_ignore_ascii_case(&b'd') => 6,
                    2 => 0,
                    e => e - 1,
                };
                next(len, esc, 0)
            } else if b == b'"' {
                if len < min {
                    return;
                }
                s.frames.pop();
                out.push(s);
                return;
            } else if len >= max {
                return;
            } else {
                match b {
                    b'\\' => next(len + 1, 1, 0),
                    0x00..=0x1F => return,
                    0x20..=0x7F => next(len + 1, 0, 0),
                    0xC2..=0xDF => next(len + 1, 0, 1),
                    0xE0 => next(len + 1, 0, 0x12),
                    0xED => next(len + 1, 0, 0x22),
                    0xE1..=0xEF => next(len + 1, 0, 2),
                    0xF0 => next(len + 1, 0, 0x33),
                    0xF4 => next(len + 1, 0, 0x43),
                    0xF1..=0xF3 => next(len + 1, 0, 3),
                    _ => return,
                }
            };
            *s.frames.last_mut().expect("top") = frame;
            out.push(s);
        }
        Frame::Num {
            integer,
            phase,
            digits,
        } => {
            use NumPhase::*;
            let digit = b.is_ascii_digit();
            let to = |phase, digits| Frame::Num {
                integer,
                phase,
                digits,
            };
            let frame = match (phase, b) {
                // `-0` is an integer to JSON Schema but a float to many parsers.
                (Sign, b'0') if !integer => Some(to(Zero, 1)),
                (Sign, b'1'..=b'9') => Some(to(Int, 1)),
                (Int, _) if digit && digits < MAX_INT_DIGITS => Some(to(Int, digits + 1)),
                (Zero | Int, b'.') if !integer => Some(to(Dot, 0)),
                (Dot, _) if digit => Some(to(Frac, 1)),
                (Frac, _) if digit && digits < MAX_FRAC_DIGITS => Some(to(Frac, digits + 1)),
                (Zero | Int | Frac, b'e' | b'E') if !integer => Some(to(Exp, 0)),
                (Exp, b'+' | b'-') => Some(to(ExpSign, 0)),
                (Exp | ExpSign, _) if digit => Some(to(ExpDigits, 1)),
                (ExpDigits, _) if digit && digits < MAX_EXP_DIGITS => {
                    Some(to(ExpDigits, digits + 1))
                }
                _ => None,
            };
            match frame {
                Some(f) => {
                    *s.frames.last_mut().expect("top") = f;
                    out.push(s);
                }
                // The number ends here; the byte belongs to what holds it.
                None if phase.complete() => {
                    s.frames.pop();
                    if !s.frames.is_empty() {
                        step(g, s, b, out);
                    }
                }
                None => {}
            }
        }
        Frame::Obj { node, next, phase } => {
            let Node::Object(o) = g.node(node) else {
                return;
            };
            if ws {
                return whitespace(s, b, out);
            }
            let set = |s: &mut Stack, next, phase| {
                *s.frames.last_mut().expect("top") = Frame::Obj { node, next, phase };
            };
            let n = next as usize;
            match (phase, b) {
                (ObjPhase::Open | ObjPhase::After, b'}') if !o.required_from(n) => {
                    s.frames.pop();
                    out.push(s);
                }
                (ObjPhase::After, b',') if o.more_after(n) => {
                    set(&mut s, next, ObjPhase::Comma);
                    out.push(s);
                }
                (ObjPhase::Open | ObjPhase::Comma, b'"') => {
                    for prop in o.candidates(n) {
                        let mut k = s.clone();
                        set(&mut k, next, ObjPhase::Colon { prop: prop as u16 });
                        if o.props[prop].key.len() == 1 {
                            out.push(k);
                        } else {
                            push(
                                k,
                                Frame::Key {
                                    node,
                                    prop: prop as u16,
                                    pos: 1,
                                },
                                out,
                            );
                        }
                    }
                    if o.additional.is_some() {
                        set(&mut s, next, ObjPhase::Colon { prop: FREE_KEY });
                        push(
                            s,
                            Frame::Str {
                                node: KEY,
                                len: 0,
                                esc: 0,
                                utf8: 0,
                            },
                            out,
                        );
                    }
                }
                (ObjPhase::Colon { prop }, b':') => {
                    let (next, value) = match prop {
                        FREE_KEY => match o.additional {
                            Some(v) => (next, v),
                            None => return,
                        },
                        p => (p + 1, o.props[p as usize].value),
                    };
                    set(&mut s, next, ObjPhase::After);
                    push(s, Frame::Value(value), out);
                }
                _ => {}
            }
        }
        Frame::Arr { node, count, phase } => {
            let Node::Array { items, min, max } = *g.node(node) else {
                return;
            };
            if ws {
                return whitespace(s, b, out);
            }
            match (phase, b) {
                (ArrPhase::Open | ArrPhase::After, b']')
                    if count >= min && (phase == ArrPhase::After || min == 0) =>
                {
                    s.frames.pop();
                    out.push(s);
                }
                (ArrPhase::After, b',') if count < max => {
                    *s.frames.last_mut().expect("top") = Frame::Arr {
                        node,
                        count,
                        phase: ArrPhase::Comma,
                    };
                    out.push(s);
                }
                (ArrPhase::Open | ArrPhase::Comma, _) if count < max => {
                    *s.frames.last_mut().expect("top") = Frame::Arr {
                        node,
                        count: count + 1,
                        phase: ArrPhase::After,
                    };
                    if s.frames.len() < MAX_DEPTH {
                        start_value(g, s, items, b, out);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Whether `b` may continue a UTF-8 character. `utf8` packs the bytes still owed (low nibble)
/// and, for the first of them after some lead bytes, the narrower range UTF-8 allows (high
/// nibble): no overlong forms, no surrogates, nothing past U+10FFFF.
fn continuation(utf8: u8, b: u8) -> bool {
    let (lo, hi) = match utf8 >> 4 {
        1 => (0xA0, 0xBF), // after E0
        2 => (0x80, 0x9F), // after ED
        3 => (0x90, 0xBF), // after F0
        4 => (0x80, 0x8F), // after F4
        _ => (0x80, 0xBF),
    };
    (lo..=hi).contains(&b)
}

/// The first byte of a value of `node` (its `Value` frame already popped).
fn start_value(g: &Grammar, s: Stack, node: NodeId, b: u8, out: &mut Vec<Stack>) {
    match g.node(node) {
        Node::Object(_) if b == b'{' => push(
            s,
            Frame::Obj {
                node,
                next: 0,
                phase: ObjPhase::Open,
            },
            out,
        ),
        Node::Array { .. } if b == b'[' => push(
            s,
            Frame::Arr {
                node,
                count: 0,
                phase: ArrPhase::Open,
            },
            out,
        ),
        Node::String { .. } if b == b'"' => push(
            s,
            Frame::Str {
                node,
                len: 0,
                esc: 0,
                utf8: 0,
            },
            out,
        ),
        Node::Number { integer } => {
            let (phase, digits) = match b {
                b'-' => (NumPhase::Sign, 0),
                b'0' => (NumPhase::Zero, 1),
                b'1'..=b'9' => (NumPhase::Int, 1),
                _ => return,
            };
            push(
                s,
                Frame::Num {
                    integer: *integer,
                    phase,
                    digits,
                },
                out,
            );
        }
        Node::Literal(lit) if lit.first() == Some(&b) => {
            if lit.len() == 1 {
                out.push(s);
            } else {
                push(s, Frame::Lit { node, pos: 1 }, out);
            }
        }
        Node::OneOf(alts) => {
            for &alt in alts.iter() {
                start_value(g, s.clone(), alt, b, out);
            }
        }
        Node::Text if b != b'{' => push(s, Frame::Text, out),
        Node::Lines { item, .. } => {
            let lines = Frame::Lines {
                node,
                count: 1,
                open: false,
            };
            if s.frames.len() + 1 < MAX_DEPTH {
                let mut s = s;
                s.frames.push(lines);
                start_value(g, s, *item, b, out);
            }
        }
        _ => {}
    }
}
