//! The flat SentencePiece BPE against `tokenizers` on the same documents.

use std::str::FromStr;

use serde_json::{Value, json};

use super::SentencePiece;

/// A SentencePiece vocabulary as `model prepare` writes it (`tokenizer_json.py`): control tokens
/// special, user-defined ones added, the 256 byte tokens, and normal pieces whose every split
/// into two tokens is a merge ranked by the merged piece's score.
fn document(normal: &[(&str, f32)]) -> Value {
    let mut tokens: Vec<(String, u8, f32)> = ["<pad>", "<eos>", "<bos>", "<unk>"]
        .iter()
        .map(|t| (t.to_string(), 3, 0.0))
        .collect();
    tokens.extend(
        ["\n", "\n\n", "<x>"]
            .iter()
            .map(|t| (t.to_string(), 4, 0.0)),
    );
    tokens.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 6, 0.0)));
    tokens.extend(normal.iter().map(|&(t, s)| (t.to_string(), 1, s)));
    let id = |t: &str| tokens.iter().position(|(p, _, _)| p == t);
    let mut merges = Vec::new();
    for (i, (t, kind, score)) in tokens.iter().enumerate() {
        if *kind != 1 {
            continue;
        }
        let mut local: Vec<(usize, usize)> = t
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| Some((id(&t[..at])?, id(&t[at..])?)))
            .collect();
        local.sort();
        merges.extend(local.into_iter().map(|(a, b)| (-score, i, a, b)));
    }
    merges.sort_by(|x, y| x.partial_cmp(y).expect("no NaN"));
    let added: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter(|(_, (_, kind, _))| *kind == 3 || *kind == 4)
        .map(|(i, (t, kind, _))| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": *kind == 3})
        })
        .collect();
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, (t, _, _))| (t.clone(), json!(i)))
        .collect();
    let merges: Vec<Value> = merges
        .iter()
        .map(|&(_, _, a, b)| json!([tokens[a].0, tokens[b].0]))
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
        "pre_tokenizer": null, "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
                  "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
                  "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
}

/// Pieces sharing prefixes and suffixes, so that merges compete (a higher score first, ties by
/// the list's order), with spaces and a two-byte character.
const PIECES: &[(&str, f32)] = &[
    ("a", -1.0),
    ("b", -1.0),
    ("c", -1.0),
    ("\u{e9}", -2.0),
    ("\u{2581}", -1.5),
    ("ab", -3.0),
    ("bc", -3.0),
    ("ca", -4.0),
    ("aa", -5.0),
    ("abc", -2.5),
    ("aaa", -6.0),
    ("\u{2581}a", -2.0),
    ("\u{2581}ab", -4.5),
    ("\u{2581}c", -3.5),
    ("\u{2581}\u{2581}", -7.0),
    ("\u{e9}\u{2581}", -3.0),
    ("c\u{e9}", -3.0),
    ("bca", -2.8),
    ("\u{2581}abc", -5.0),
    ("\u{2581}\u{2581}\u{2581}", -8.0),
    ("x<", -4.0),
    ("<", -1.0),
    ("x", -1.0),
];

fn both(doc: &Value) -> (SentencePiece, tokenizers::Tokenizer) {
    let text = doc.to_string();
    let ours = SentencePiece::from_json(&text).expect("a document by the rule");
    let theirs = tokenizers::Tokenizer::from_str(&text).expect("tokenizers reads it");
    (ours, theirs)
}

/// The ids `tokenizers` gives `text`, after checking ours give the same.
fn same_ids(ours: &SentencePiece, theirs: &tokenizers::Tokenizer, text: &str) -> Vec<u32> {
    let expected = theirs
        .encode(text, false)
        .expect("encodes")
        .get_ids()
        .to_vec();
    assert_eq!(ours.encode(text), expected, "{text:?}");
    expected
}

/// xorshift64: the test's fixed sequence of choices.
fn choices(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    }
}

#[test]
fn texts_encode_to_the_ids_tokenizers_gives() {
    let (ours, theirs) = both(&document(PIECES));
    // Characters outside the vocabulary (`z`, a three-byte and a four-byte one) go by their
    // bytes; `<x>`, `\n`, `\n\n` and the special tokens are matched whole.
    let parts = [
        "a",
        "b",
        "c",
        "\u{e9}",
        " ",
        "  ",
        "z",
        "\u{65e5}",
        "\u{1f600}",
        "\n",
        "<x>",
        "<eos>",
        "<bos>",
        "x",
        "<",
        "abc",
        " ab",
    ];
    let mut next = choices(0x2545_F491_4F6C_DD1D);
    let mut compared = 0;
    for len in 0..400 {
        let text: String = (0..len % 40).map(|_| parts[next(parts.len())]).collect();
        let expected = same_ids(&ours, &theirs, &text);
        assert_eq!(
            ours.decode(&expected),
            theirs.decode(&expected, true).expect("decodes"),
            "{text:?}"
        );
        compared += expected.len();
    }
    assert!(compared > 2000, "{compared} ids compared");
}

#[test]
fn any_ids_decode_to_the_text_tokenizers_gives() {
    // Runs of byte tokens that are not UTF-8 (one U+FFFD per byte), specials left out, ids past
    // the vocabulary skipped.
    let (ours, theirs) = both(&document(PIECES));
    let mut next = choices(0x9E37_79B9_7F4A_7C15);
    let len = ours.len() + 3;
    for _ in 0..300 {
        let ids: Vec<u32> = (0..next(12)).map(|_| next(len) as u32).collect();
        assert_eq!(
            ours.decode(&ids),
            theirs.decode(&ids, true).expect("decodes"),
            "{ids:?}"
        );
    }
}

fn merges(doc: &mut Value) -> &mut Vec<Value> {
    doc["model"]["merges"].as_array_mut().expect("a list")
}

#[test]
fn a_document_off_the_rule_is_left_to_tokenizers() {
    let doc = document(PIECES);
    let mut dropped = doc.clone();
    merges(&mut dropped).remove(3);
    // Two merges making one token (`abc`: `a`+`bc`, `ab`+`c`) the other way round.
    let mut swapped = doc.clone();
    let list = merges(&mut swapped);
    let joined = |m: &Value| {
        format!(
            "{}{}",
            m[0].as_str().unwrap_or(""),
            m[1].as_str().unwrap_or("")
        )
    };
    let at = (1..list.len())
        .find(|&i| joined(&list[i]) == "abc" && joined(&list[i - 1]) == "abc")
        .expect("two merges make abc");
    list.swap(at - 1, at);
    let mut stranger = doc.clone();
    merges(&mut stranger).push(json!(["c", "a"])); // `ca` again, after other tokens
    let mut normalizer = doc.clone();
    normalizer["normalizer"] = json!({"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u{2581}"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}]});
    let mut stripped = doc.clone();
    stripped["added_tokens"][0]["lstrip"] = json!(true);
    for (what, doc) in [
        ("a merge missing", dropped),
        ("a token's merges out of order", swapped),
        ("a token's merges apart", stranger),
        ("another normaliser", normalizer),
        ("an added token that strips", stripped),
    ] {
        assert!(
            SentencePiece::from_json(&doc.to_string()).is_none(),
            "{what}"
        );
    }
    assert!(SentencePiece::from_json(&doc.to_string()).is_some());
}

#[test]
fn the_merges_order_is_the_list_s_not_the_scores() {
    // Tokens ranked in another order than their scores' (the first and last merges swapped,
    // each token's merges still together): the list decides, as in `tokenizers`.
    let mut doc = document(PIECES);
    let list = merges(&mut doc);
    let joined: Vec<String> = list
        .iter()
        .map(|m| {
            format!(
                "{}{}",
                m[0].as_str().unwrap_or(""),
                m[1].as_str().unwrap_or("")
            )
        })
        .collect();
    let alone = |i: &usize| joined.iter().filter(|j| **j == joined[*i]).count() == 1;
    let first = (0..list.len())
        .find(alone)
        .expect("a token one merge makes");
    let last = (0..list.len())
        .rev()
        .find(alone)
        .expect("a token one merge makes");
    assert!(first < last);
    list.swap(first, last);
    let (ours, theirs) = both(&doc);
    for text in ["abcabc", " aaa bca", "cab\u{e9} c", "aaaa  abc"] {
        same_ids(&ours, &theirs, text);
    }
}
