//! What a constrained answer may be: a small tree of JSON shapes (objects with their keys in a
//! fixed order, arrays with bounds, strings with bounds, numbers, literals, alternatives), in an
//! arena so that `$ref`s can be recursive. Compiled from a JSON Schema by `schema`, or the
//! shape of `response_format: json_object` (any object).

/// Index of a node in [`Grammar::nodes`].
pub(crate) type NodeId = u32;

/// Most digits of a number's integer part, fraction and exponent. Digits past a double's
/// precision mean nothing, an exponent of three digits can overflow the doubles JSON parsers read
/// numbers into, and a bound keeps a model from writing digits forever.
pub(crate) const MAX_INT_DIGITS: u8 = 16;
/// See [`MAX_INT_DIGITS`].
pub(crate) const MAX_FRAC_DIGITS: u8 = 16;
/// See [`MAX_INT_DIGITS`].
pub(crate) const MAX_EXP_DIGITS: u8 = 2;
/// Whitespace between two tokens of JSON is one space, or a newline and at most this many spaces
/// or tabs (the rule of llama.cpp's JSON grammars): enough to pretty-print, and a model cannot
/// pad forever.
pub(crate) const MAX_INDENT: u8 = 20;
/// Longest key of an object whose keys are free (`json_object`, `additionalProperties`).
pub(crate) const MAX_KEY_CHARS: u32 = 256;

/// One shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `{...}`.
    Object(Object),
    /// `[...]` of `items`, between `min` and `max` of them.
    Array {
        /// Each item's shape.
        items: NodeId,
        /// Fewest items.
        min: u32,
        /// Most items.
        max: u32,
    },
    /// A string of `min..=max` characters (an escape counts as one).
    String {
        /// Fewest characters.
        min: u32,
        /// Most characters.
        max: u32,
    },
    /// A JSON number; `integer` allows no fraction or exponent.
    Number {
        /// Integers only.
        integer: bool,
    },
    /// Exactly these bytes (`true`, `null`, an enum's value as compact JSON).
    Literal(Box<[u8]>),
    /// Any one of these.
    OneOf(Box<[NodeId]>),
    /// Free text that does not start with `{` (a tool call's alternative under `auto`); it
    /// ends with the model's end of sequence.
    Text,
    /// One to `max` values of `item`, each after the first on a line of its own (one `\n`
    /// between them, nothing else): several tool calls in one answer.
    Lines {
        /// Each value's shape.
        item: NodeId,
        /// Most values.
        max: u32,
    },
}

/// An object's keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Object {
    /// Declared keys, written in this order; optional ones may be left out.
    pub(crate) props: Vec<Prop>,
    /// Free keys with values of this shape (only when there are no declared keys).
    pub(crate) additional: Option<NodeId>,
}

impl Object {
    /// Whether a declared key at or after `next` must still come.
    pub(crate) fn required_from(&self, next: usize) -> bool {
        self.props.iter().skip(next).any(|p| p.required)
    }

    /// The declared keys that may come next: from `next` up to the first required one.
    pub(crate) fn candidates(&self, next: usize) -> std::ops::Range<usize> {
        let end = self
            .props
            .iter()
            .enumerate()
            .skip(next)
            .find(|(_, p)| p.required)
            .map_or(self.props.len(), |(i, _)| i + 1);
        next.min(end)..end
    }

    /// Whether any key may follow a `,` when the declared ones before `next` are written.
    pub(crate) fn more_after(&self, next: usize) -> bool {
        next < self.props.len() || self.additional.is_some()
    }
}

/// A declared key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prop {
    /// The key as JSON (quotes included).
    pub(crate) key: Box<[u8]>,
    /// Its value's shape.
    pub(crate) value: NodeId,
    /// Whether it must be written.
    pub(crate) required: bool,
}

/// A compiled constraint.
#[derive(Debug, Clone, PartialEq)]
pub struct Grammar {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: NodeId,
}

impl Grammar {
    /// `response_format: {"type": "json_object"}`: any JSON object.
    pub fn json_object() -> Self {
        let mut g = Self {
            nodes: Vec::new(),
            root: 0,
        };
        let any = g.any_value();
        g.root = g.push(Node::Object(Object {
            props: Vec::new(),
            additional: Some(any),
        }));
        g
    }

    /// One to `max` answers of this grammar, one per line (several tool calls).
    pub fn lines(mut self, max: u32) -> Self {
        let item = self.root;
        self.root = self.push(Node::Lines {
            item,
            max: max.max(1),
        });
        self
    }

    /// This grammar, or free text that does not start with `{`.
    pub fn or_text(mut self) -> Self {
        let text = self.push(Node::Text);
        let root = self.root;
        self.root = self.push(Node::OneOf(Box::new([root, text])));
        self
    }

    /// Adds the shape of any JSON value and returns it.
    pub(crate) fn any_value(&mut self) -> NodeId {
        let any = self.push(Node::OneOf(Box::new([])));
        let object = self.push(Node::Object(Object {
            props: Vec::new(),
            additional: Some(any),
        }));
        let array = self.push(Node::Array {
            items: any,
            min: 0,
            max: u32::MAX,
        });
        let string = self.push(Node::String {
            min: 0,
            max: u32::MAX,
        });
        let number = self.push(Node::Number { integer: false });
        let mut alts = vec![object, array, string, number];
        for lit in ["true", "false", "null"] {
            alts.push(self.push(Node::Literal(lit.as_bytes().into())));
        }
        self.nodes[any as usize] = Node::OneOf(alts.into());
        any
    }

    pub(crate) fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }
}
