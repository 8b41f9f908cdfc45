"""Check a prepared model against the numpy reference of its GGUF, then generate an answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .generate import Decoder
from .gguf_source import load
from .reference import Reference


def _log(msg: str) -> None:
    print(f"[verify] {msg}", file=sys.stderr, flush=True)


def _chat_prompt(meta: dict, text: str) -> str:
    # The engine renders the real template with minijinja; ChatML by hand is enough here.
    if "<|im_start|>" not in (meta.get("chat_template") or ""):
        return text
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def run(model_dir: Path, gguf: Path, prompt: str, expect: str | None, max_new: int) -> bool:
    """True when logits agree with the reference and, if `expect` is given, the answer contains it."""
    meta = json.loads((model_dir / "morpheus.json").read_text())
    if meta["options"].get("kernels") == "morpheus":
        # ONNX Runtime alone cannot run `ai.morpheus.BlockMatMul`; the worker's tests check it
        # against this path (`cargo test -p morpheus-worker kernels`).
        _log("this model uses the worker's own kernels: prepare it with --kernels onnxruntime to verify here")
        return False
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    ids = tok.encode(_chat_prompt(meta, prompt), add_special_tokens=False).ids
    _log(f"prompt: {len(ids)} tokens")
    ok = True

    try:
        import llama_cpp  # noqa: PLC0415

        llm = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        theirs = llm.tokenize(_chat_prompt(meta, prompt).encode(), add_bos=False, special=True)
        same = list(theirs) == ids
        _log(f"tokenizer matches llama.cpp: {same}")
        ok &= same
    except ImportError:
        _log("llama_cpp not installed: tokenizer not compared")

    dec = Decoder(model_dir)
    ref = Reference(load(gguf))
    extra = [int(i) for i in np.random.default_rng(0).integers(20, meta["vocab_size"], size=3)]
    ref_logits = ref.logits(ids + extra)

    # Optimum-style path: past grows by one each step.
    logits, past = dec.step(ids, dec._empty_past(1, 0), 0)
    got = [logits]
    n = len(ids)
    for t in extra:
        logits, past = dec.step([t], past, n)
        got.append(logits)
        n += 1
    # Shared-buffer path: present bound onto past, updated in place.
    shared = dec.prompt_logits_shared(ids, n + 8, extra)
    for step, (g, s) in enumerate(zip(got, shared)):
        r = ref_logits[len(ids) - 1 + step]
        err = float(np.max(np.abs(g - r)) / (np.max(np.abs(r)) + 1e-9))
        cos = float(np.dot(g, r) / (np.linalg.norm(g) * np.linalg.norm(r)))
        same_top = int(np.argmax(g)) == int(np.argmax(r))
        alias = float(np.max(np.abs(g - s)))
        _log(f"step {step}: rel max err {err:.2e}, cosine {cos:.6f}, same argmax {same_top}, shared-buffer diff {alias:.1e}")
        # accuracy_level 0 is exact float math; 4 quantises activations to int8 per block.
        # Folded Q4_1 (`q4_1: int8`) moves each block's offset by at most d/32.
        exact = meta["options"]["accuracy_level"] == 0 and meta["options"].get("q4_1", "exact") == "exact"
        ok &= (err < 1e-4 if exact else cos > 0.98) and alias < 1e-4

    stops = set(meta["eos_token_ids"])
    out = dec.greedy(ids, max_new, stops)
    answer = tok.decode(out, skip_special_tokens=True)
    _log(f"answer: {answer!r}")
    if expect is not None:
        found = expect in answer
        _log(f"contains {expect!r}: {found}")
        ok &= found
    _log("OK" if ok else "FAILED")
    return ok
