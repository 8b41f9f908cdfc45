"""Rebuild a Hugging Face `tokenizer.json` from the tokenizer data a GGUF carries.

Supports GGML's `gpt2` tokenizer model (byte-level BPE), which SmolLM2, Llama 3 and Qwen2/2.5/3 use.
The pre-tokenizer follows `tokenizer.ggml.pre` the way llama.cpp reads it.
"""

from __future__ import annotations

from .gguf_source import TokenizerData

# GGML token types (gguf.TokenType): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
NORMAL = 1

_LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


# Qwen2's: Llama 3's with single digits.
_QWEN2_REGEX = _LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")


def _byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def _pre_tokenizer(pre: str) -> dict:
    if pre in ("smollm", "starcoder", "refact", "codeshell", "command-r", "exaone", "minerva-7b"):
        # llama.cpp: ["\p{N}", gpt2 regex] == HF Digits(individual) + ByteLevel(use_regex).
        return {
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": True}, _byte_level(True)],
        }
    regex = {"llama-bpe": _LLAMA3_REGEX, "llama3": _LLAMA3_REGEX, "dbrx": _LLAMA3_REGEX, "smaug-bpe": _LLAMA3_REGEX,
             "qwen2": _QWEN2_REGEX, "deepseek-r1-qwen": _QWEN2_REGEX}.get(pre)
    if regex is not None:
        return {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
                _byte_level(False),
            ],
        }
    if pre in ("default", "gpt2", "gpt-2"):
        return _byte_level(True)
    raise ValueError(f"pre-tokenizer {pre!r} is not supported")


CONTROL, USER_DEFINED, BYTE = 3, 4, 6


def sentencepiece_merges(tok: TokenizerData) -> list[list[str]]:
    """BPE merges of a SentencePiece vocabulary, from its scores: every split of a token into two
    tokens is a merge, ranked by the merged token's score (higher first), as SentencePiece's BPE
    (and llama.cpp's `llama` tokenizer) merge the best-scoring pair first."""
    ids = {t: i for i, t in enumerate(tok.tokens)}
    merges = []
    for i, (t, ty) in enumerate(zip(tok.tokens, tok.token_types)):
        if ty != NORMAL or len(t) < 2:
            continue
        local = [(ids[t[:j]], ids[t[j:]]) for j in range(1, len(t)) if t[:j] in ids and t[j:] in ids]
        merges.extend((-tok.scores[i], i, a, b) for a, b in sorted(local))
    merges.sort()
    return [[tok.tokens[a], tok.tokens[b]] for _, _, a, b in merges]


def build_sentencepiece(tok: TokenizerData) -> dict:
    """tokenizer.json for GGML's `llama` (SentencePiece BPE) tokenizer: spaces as U+2581, merges by
    score, unknown characters as their UTF-8 bytes (`<0xNN>` tokens); control tokens are special,
    user-defined ones (Gemma's runs of newlines) matched whole before the model."""
    if len(tok.scores) != len(tok.tokens):
        raise ValueError("a SentencePiece tokenizer without a score per token")
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": ty == CONTROL}
        for i, (t, ty) in enumerate(zip(tok.tokens, tok.token_types))
        if ty in (CONTROL, USER_DEFINED)
    ]
    space = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    normalizer = space
    decoders = [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
                {"type": "Fuse"}]
    if tok.add_space_prefix:
        normalizer = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"}, space]}
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    doc = _document(tok, added, _sentencepiece_model(tok))
    doc["normalizer"] = normalizer
    doc["pre_tokenizer"] = None
    doc["decoder"] = {"type": "Sequence", "decoders": decoders}
    return doc


def _sentencepiece_model(tok: TokenizerData) -> dict:
    return {
        "type": "BPE",
        "dropout": None,
        "unk_token": None if tok.unk_id is None else tok.tokens[tok.unk_id],
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": True,
        "byte_fallback": True,
        "ignore_merges": False,
        "vocab": {t: i for i, t in enumerate(tok.tokens)},
        "merges": sentencepiece_merges(tok),
    }


def build(tok: TokenizerData) -> dict:
    """The tokenizer.json document."""
    if tok.model == "llama":
        return build_sentencepiece(tok)
    if tok.model != "gpt2":
        raise ValueError(f"tokenizer model {tok.model!r} is not supported (gpt2 byte-level BPE or llama "
                         f"SentencePiece)")
    added = [
        {
            "id": i,
            "content": t,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, (t, ty) in enumerate(zip(tok.tokens, tok.token_types))
        if ty != NORMAL
    ]
    model = {
        "type": "BPE",
        "dropout": None,
        "unk_token": None,
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": False,
        "byte_fallback": False,
        "ignore_merges": False,
        "vocab": {t: i for i, t in enumerate(tok.tokens)},
        "merges": tok.merges,
    }
    return _document(tok, added, model)


def _document(tok: TokenizerData, added: list[dict], model: dict) -> dict:
    """The document around `model` (byte-level BPE's normaliser, pre-tokenizer and decoder; the
    SentencePiece builder replaces those three)."""
    post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    if tok.add_bos and tok.bos_id is not None:
        bos = tok.tokens[tok.bos_id]
        post = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [tok.bos_id], "tokens": [bos]}},
        }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": _pre_tokenizer(tok.pre) if tok.model == "gpt2" else None,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": model,
    }
