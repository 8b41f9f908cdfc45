use std::sync::Arc;

use serde_json::{Value, json};

use super::{Grammar, Guide, Vocab, compile, matcher::Matcher};
use crate::engine::SplitMix64;
use crate::model::TextTokenizer;

fn accepts(g: &Grammar, text: &str) -> bool {
    let mut m = Matcher::new(g);
    m.feed(g, text.as_bytes()) && m.is_complete()
}

fn schema(s: Value) -> Grammar {
    compile(&s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 8},
            "age": {"type": "integer"},
            "nick": {"type": ["string", "null"], "maxLength": 4},
            "tags": {"type": "array", "items": {"enum": ["red", "rose", 7]}, "minItems": 1, "maxItems": 2},
            "score": {"type": "number"},
            "pet": {"type": "object", "properties": {"kind": {"const": "cat"}}, "required": ["kind"]}
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": false
    })
}

#[test]
fn any_object_takes_json_and_refuses_what_is_not() {
    let g = Grammar::json_object();
    for ok in [
        r#"{}"#,
        r#"{"a": [1, -0.5, 2.5e+3, "x\u00e9\n", true, null, {"b": {}}]}"#,
        "{\n  \"k\" : \"caf\u{e9}\"\n}",
        r#"{"a":{"b":[[],[{}]]}}"#,
    ] {
        assert!(accepts(&g, ok), "{ok}");
    }
    for bad in [
        "[1]",
        r#"{"a" 1}"#,
        r#"{"a":01}"#,
        r#"{"a":1,}"#,
        r#"{"a":1} "#,
        r#"{"a":"\q"}"#,
        "{\"a\":\"\u{1}\"}",
        r#"{"a":tru}"#,
        r#"{"a":1.}"#,
        r#"{"a":"#,
    ] {
        assert!(!accepts(&g, bad), "{bad}");
    }
}

#[test]
fn strings_are_valid_utf8_and_numbers_fit_a_double() {
    let g = Grammar::json_object();
    let bytes_ok = |b: &[u8]| {
        let mut m = Matcher::new(&g);
        m.feed(&g, b) && m.is_complete()
    };
    assert!(bytes_ok("{\"a\":\"\u{10FFFF}\u{E9}\u{20AC}\"}".as_bytes()));
    for bad in [
        &b"{\"a\":\"\xC0\x80\"}"[..],    // overlong
        b"{\"a\":\"\xE0\x80\x80\"}",     // overlong
        b"{\"a\":\"\xED\xA0\x80\"}",     // a surrogate
        b"{\"a\":\"\xF4\x90\x80\x80\"}", // past U+10FFFF
        b"{\"a\":\"\xE9\"}",             // a lead byte alone
        br#"{"a":"\ud800"}"#,            // a lone surrogate escape
        br#"{"a":1e100}"#,               // three exponent digits
        br#"{"a":12345678901234567}"#,   // seventeen digits
    ] {
        assert!(!bytes_ok(bad), "{}", String::from_utf8_lossy(bad));
    }
    let int = schema(json!({"type": "integer"}));
    assert!(!accepts(&int, "-0") && accepts(&int, "-10") && accepts(&int, "0"));
    assert!(accepts(&schema(json!({"type": "number"})), "-0.5e-12"));
}

#[test]
fn a_schema_is_held_key_by_key() {
    let g = schema(person());
    for ok in [
        r#"{"name":"ann","age":30,"tags":["red"]}"#,
        r#"{"name": "bo", "age": -2, "nick": null, "tags": ["rose", 7], "score": 1.5e-3}"#,
        r#"{"name":"","age":0,"nick":"abcd","tags":[7],"pet":{"kind":"cat"}}"#,
    ] {
        assert!(accepts(&g, ok), "{ok}");
    }
    for (bad, why) in [
        (r#"{"name":"ann","tags":["red"]}"#, "age is required"),
        (
            r#"{"name":"ann","age":1.5,"tags":["red"]}"#,
            "age is an integer",
        ),
        (
            r#"{"name":"annabelle!","age":1,"tags":["red"]}"#,
            "name over maxLength",
        ),
        (r#"{"name":"a","age":1,"tags":[]}"#, "tags under minItems"),
        (
            r#"{"name":"a","age":1,"tags":["red","red","red"]}"#,
            "tags over maxItems",
        ),
        (r#"{"name":"a","age":1,"tags":["blue"]}"#, "not in the enum"),
        (
            r#"{"name":"a","age":1,"tags":["red"],"x":1}"#,
            "an undeclared key",
        ),
        (
            r#"{"name":"a","age":1,"tags":["red"],"pet":{}}"#,
            "pet.kind is required",
        ),
        (
            r#"{"name":"a","age":1,"tags":["red"],"pet":{"kind":"dog"}}"#,
            "const",
        ),
        (
            r#"{"name":"a","age":1,"nick":"toolong","tags":["red"]}"#,
            "nick over maxLength",
        ),
    ] {
        assert!(!accepts(&g, bad), "{why}: {bad}");
    }
}

#[test]
fn recursive_references_and_one_schema_all_of() {
    let g = schema(json!({
        "$defs": {"node": {"type": "object", "properties": {
            "v": {"type": "integer"},
            "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}
        }, "required": ["v"]}},
        "allOf": [{"$ref": "#/$defs/node"}],
        "title": "tree"
    }));
    assert!(accepts(
        &g,
        r#"{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]}"#
    ));
    assert!(!accepts(&g, r#"{"v":1,"kids":[{"w":2}]}"#));
}

#[test]
fn what_cannot_be_enforced_is_refused_by_name() {
    for (s, path, says) in [
        (
            json!({"type": "string", "pattern": "^a"}),
            "pattern",
            "`pattern` cannot be enforced",
        ),
        (
            json!({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}),
            "properties.age.minimum",
            "`minimum`",
        ),
        (
            json!({"type": "string", "format": "email"}),
            "format",
            "`format`",
        ),
        (json!({"oneOf": [{"type": "string"}]}), "oneOf", "`oneOf`"),
        (
            json!({"type": "array", "items": [{"type": "string"}]}),
            "items",
            "tuple",
        ),
        (
            json!({"type": "object", "properties": {}, "required": ["a"]}),
            "required",
            "`a` is not in `properties`",
        ),
        (
            json!({"type": "string", "minLength": 5, "maxLength": 2}),
            "minLength",
            "above",
        ),
        (
            json!({"$ref": "https://example.com/s.json"}),
            "$ref",
            "local",
        ),
        (
            json!({"$ref": "#/$defs/missing"}),
            "$ref",
            "not in the schema",
        ),
        (json!({"type": "date"}), "type", "unknown type `date`"),
        (json!({"enum": []}), "enum", "non-empty"),
        (json!(false), "", "accepts nothing"),
        (json!({"allOf": [{}, {}]}), "allOf", "exactly one"),
        (
            json!({"type": "string", "maxLength": -1}),
            "maxLength",
            "a count",
        ),
    ] {
        let e = compile(&s).expect_err(&s.to_string());
        assert_eq!(e.path, path, "{s}: {e}");
        assert!(e.to_string().contains(says), "{s}: {e}");
    }
}

/// Walks the grammar byte by byte at random (any allowed byte, leaning towards closing ones),
/// and checks every answer it ends with parses and holds the schema's rules.
fn random_answers(g: &Grammar, seed: u64, runs: usize) -> Vec<Value> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::new();
    for _ in 0..runs {
        let mut m = Matcher::new(g);
        let mut text = Vec::new();
        for _ in 0..20_000 {
            if m.is_finished(g) || (m.is_complete() && rng.next_u64().is_multiple_of(4)) {
                break;
            }
            let allowed: Vec<u8> = (0..=255u8).filter(|&b| m.allows(g, &[b])).collect();
            assert!(
                !allowed.is_empty(),
                "stuck after {}",
                String::from_utf8_lossy(&text)
            );
            let closing: Vec<u8> = allowed
                .iter()
                .copied()
                .filter(|b| matches!(b, b'"' | b'}' | b']'))
                .collect();
            let pool = if !closing.is_empty() && rng.next_u64().is_multiple_of(3) {
                &closing
            } else {
                &allowed
            };
            let b = pool[(rng.next_u64() % pool.len() as u64) as usize];
            assert!(m.feed(g, &[b]));
            text.push(b);
        }
        assert!(
            m.is_complete(),
            "unfinished: {}",
            String::from_utf8_lossy(&text)
        );
        let value: Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&text)));
        out.push(value);
    }
    out
}

#[test]
fn every_answer_parses_and_holds_the_schema() {
    for v in random_answers(&schema(person()), 7, 200) {
        let o = v.as_object().expect("an object");
        assert!(
            o.keys()
                .all(|k| ["name", "age", "nick", "tags", "score", "pet"].contains(&k.as_str())),
            "{v}"
        );
        assert!(
            o["name"].as_str().expect("name").chars().count() <= 8,
            "{v}"
        );
        assert!(o["age"].is_i64() || o["age"].is_u64(), "{v}");
        let tags = o["tags"].as_array().expect("tags");
        assert!((1..=2).contains(&tags.len()), "{v}");
        assert!(
            tags.iter()
                .all(|t| [json!("red"), json!("rose"), json!(7)].contains(t)),
            "{v}"
        );
        if let Some(p) = o.get("pet") {
            assert_eq!(p, &json!({"kind": "cat"}));
        }
    }
    for v in random_answers(&Grammar::json_object(), 11, 100) {
        assert!(v.is_object(), "{v}");
    }
}

/// A byte-level BPE vocabulary of a few tokens, as a tokenizer file writes it.
fn tiny_tokenizer() -> TextTokenizer {
    let vocab = json!({"{": 0, "}": 1, "\"": 2, "a": 3, "\u{120}": 4, "{\"": 5, "\"}": 6, "<eos>": 7, ":": 8, "1": 9, "\u{120}1": 10});
    let t = json!({
        "version": "1.0",
        "added_tokens": [{"id": 7, "content": "<eos>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    });
    TextTokenizer::Hf(Box::new(t.to_string().parse().expect("a tokenizer")))
}

#[test]
fn the_mask_follows_the_grammar_over_tokens() {
    let tok = tiny_tokenizer();
    let vocab = Arc::new(Vocab::new(&tok, 12));
    assert_eq!(vocab.bytes(4), Some(&b" "[..]));
    assert_eq!(vocab.bytes(10), Some(&b" 1"[..]));
    assert_eq!(vocab.bytes(7), None, "special");
    assert_eq!(vocab.bytes(11), None, "past the tokenizer");
    let eos = Arc::new([7u32].into_iter().collect());
    let g = Arc::new(schema(
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}),
    ));
    let mut guide = Guide::new(g, vocab, eos);
    let allowed = |guide: &mut Guide| {
        let mut logits = vec![0.0f32; 12];
        assert!(guide.apply_mask(&mut logits));
        let fast: Vec<u32> = (0..12).filter(|&t| guide.allows(t)).collect();
        let masked: Vec<u32> = (0..12)
            .filter(|&t| logits[t as usize].is_finite())
            .collect();
        assert_eq!(fast, masked, "the one-token check and the mask agree");
        masked
    };
    assert_eq!(allowed(&mut guide), vec![0, 4, 5]); // `{`, ` `, `{"`
    for t in [5, 3, 2, 8] {
        guide.advance(t); // {"a":
    }
    assert_eq!(allowed(&mut guide), vec![4, 9, 10]); // ` `, `1`, ` 1`
    guide.advance(9);
    assert!(!guide.is_finished());
    assert_eq!(allowed(&mut guide), vec![1, 4, 9]); // `}`, ` `, `1`
    guide.advance(1);
    assert!(guide.is_finished());
    assert_eq!(
        allowed(&mut guide),
        vec![7],
        "only the end once the answer is whole"
    );
}

#[test]
fn several_calls_one_per_line_up_to_the_most() {
    let calls = super::compile_calls(&[
        (
            "f".into(),
            json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
        ),
        ("g".into(), json!({"type": "object"})),
    ])
    .expect("compiles");
    let two = calls.clone().lines(2);
    let f = r#"{"name": "f", "arguments": {"x": 1}}"#;
    let g = r#"{"name": "g", "arguments": {}}"#;
    for ok in [f.to_string(), format!("{f}\n{g}"), format!("{g}\n{g}")] {
        assert!(accepts(&two, &ok), "{ok}");
    }
    for bad in [
        format!("{f}\n{g}\n{f}"), // a third call, two at most
        format!("{f}\n"),         // a newline promises a call
        format!("{f}\n\n{g}"),
        format!("{f} {g}"),
        format!("{f}\n {g}"),
        format!("{f}\ntext"),
    ] {
        assert!(!accepts(&two, &bad), "{bad:?}");
    }
    // Each whole call may end the answer; between calls only the newline may come.
    let mut m = Matcher::new(&two);
    assert!(m.feed(&two, f.as_bytes()) && m.is_complete());
    assert!(m.allows(&two, b"\n{") && !m.allows(&two, b" ") && !m.allows(&two, b"\n\n"));
    assert!(!m.is_finished(&two));
    // The second of two at most ends the answer: nothing may follow it.
    assert!(m.feed(&two, format!("\n{g}").as_bytes()) && m.is_finished(&two));
    // One at most: exactly the single-call grammar.
    assert!(!accepts(&calls.clone().lines(1), &format!("{f}\n{g}")));
    // Under `auto`: the calls, or text.
    let auto = calls.lines(2).or_text();
    assert!(accepts(&auto, &format!("{f}\n{g}")) && accepts(&auto, "It is noon."));
}

#[test]
fn a_cached_mask_is_the_mask_of_its_state() {
    // Inside a string of at most 6 characters, with tokens of at most 2 bytes: the lengths that
    // cannot meet the bound within one token (0..=3) share one mask (made from the table of
    // string content); 4, 5 and 6 have their own.
    let tok = tiny_tokenizer();
    let vocab = Arc::new(Vocab::new(&tok, 12));
    assert_eq!(vocab.longest(), 2);
    let eos = Arc::new([7u32].into_iter().collect());
    let g = Arc::new(schema(json!({"type": "object",
        "properties": {"a": {"type": "string", "maxLength": 6}}, "required": ["a"]})));
    let mut guide = Guide::new(Arc::clone(&g), Arc::clone(&vocab), eos);
    let check = |guide: &mut Guide| {
        let mut logits = vec![0.0f32; 12];
        assert!(guide.apply_mask(&mut logits));
        // Token by token, as `allows` checks one: the cache, and inside the string the table of
        // string content with the walk over the tokens holding a `"`, give the same.
        let fresh: Vec<bool> = (0..12)
            .map(|t| vocab.bytes(t).is_some_and(|b| guide.matcher.allows(&g, b)))
            .collect();
        let masked: Vec<bool> = logits.iter().map(|l| l.is_finite()).collect();
        assert_eq!(masked, fresh, "the cached mask is the state's own");
        masked
    };
    for t in [5, 3, 2, 8, 2] {
        guide.advance(t); // {"a":"
    }
    for len in 0..=6 {
        let allowed = check(&mut guide);
        assert_eq!(allowed[3], len < 6, "`a` after {len} characters");
        assert!(allowed[2] && allowed[6], "the string may close after {len}");
        if len < 6 {
            guide.advance(3);
        }
    }
    // Lengths 0..=3 shared a mask; 4, 5, 6 each made one (and the states before the string
    // none: nothing was masked there).
    assert_eq!(guide.masks.len(), 4);
}

#[test]
fn the_flat_trie_masks_as_every_token_checked_alone() {
    // Tokens sharing prefixes, repeated, holding quotes and escapes, empty (never allowed): at
    // every step of answers made from the mask, the mask is exactly the tokens the matcher
    // takes one by one, inside strings (the table of string content plus the walk over the
    // subtrees holding a `"`) and outside them.
    let alphabet = b"{}[]\":, ab1-\\e.";
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut pieces: Vec<Vec<u8>> = alphabet.iter().map(|&b| vec![b]).collect();
    pieces.push(Vec::new());
    pieces.push(Vec::new()); // the end of the answer: a special token, no bytes
    while pieces.len() < 600 {
        let piece: Vec<u8> = if next(5) == 0 {
            pieces[next(pieces.len())].clone() // the same bytes under another id
        } else {
            (0..1 + next(5))
                .map(|_| alphabet[next(alphabet.len())])
                .collect()
        };
        pieces.push(piece);
    }
    let eos_id = alphabet.len() as u32 + 1;
    let vocab = Arc::new(Vocab::from_pieces(pieces.clone()));
    assert_eq!(vocab.bytes(alphabet.len() as u32), None, "an empty piece");
    assert_eq!(vocab.bytes(0), Some(&b"{"[..]));
    let g = Arc::new(schema(json!({"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "array", "items": {"type": "number"}}},
        "required": ["a", "b"]})));
    let eos = Arc::new([eos_id].into_iter().collect());
    let mut steps = Vec::new();
    for _ in 0..6 {
        let mut guide = Guide::new(Arc::clone(&g), Arc::clone(&vocab), Arc::clone(&eos));
        let mut text = Vec::new();
        for _ in 0..40 {
            let mut logits = vec![0.0f32; pieces.len()];
            let any = guide.apply_mask(&mut logits);
            let masked: Vec<u32> = (0..pieces.len() as u32)
                .filter(|&t| logits[t as usize].is_finite())
                .collect();
            let alone: Vec<u32> = (0..pieces.len() as u32)
                .filter(|&t| {
                    vocab.bytes(t).is_some_and(|b| guide.matcher.allows(&g, b))
                        || (t == eos_id && guide.matcher.is_complete())
                })
                .collect();
            let after = String::from_utf8_lossy(&text);
            assert_eq!(masked, alone, "after {after:?}");
            assert!(any && !masked.is_empty(), "{after:?} can go on");
            let token = masked[next(masked.len())];
            if token == eos_id {
                break;
            }
            text.extend_from_slice(vocab.bytes(token).unwrap_or_default());
            guide.advance(token);
        }
        steps.push(text.len());
    }
    // The answers went deep enough to pass through keys, strings and numbers.
    assert!(steps.iter().filter(|&&n| n > 20).count() >= 3, "{steps:?}");
}
