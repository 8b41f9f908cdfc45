"""Check a prepared model against the numpy reference of its GGUF, then generate an answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .generate import Decoder
from .gguf_source import load
from .reference import Reference


def _log(msg: str) -> None:
    print(f"[verify] {msg}", file=sys.stderr, flush=True)


def _chat_prompt(meta: dict, text: str, system: str | None = None) -> str:
    # The engine renders the real template with minijinja; ChatML by hand is enough here.
    if "<|im_start|>" not in (meta.get("chat_template") or ""):
        return text
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def default_worker() -> Path:
    """`MORPHEUS_WORKER`, else the release build in this repository."""
    env = os.environ.get("MORPHEUS_WORKER")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "target" / "release" / "morpheus-worker"


def worker_logits(worker: Path, model_dir: Path, ids: list[int], max_new: int,
                  activations: str | None) -> tuple[list[int], np.ndarray]:
    """`morpheus-worker model logits`: the worker's logits after each token, then greedy tokens."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "logits.f32"
        cmd = [str(worker), "model", "logits", "--model", str(model_dir), "--tokens", ",".join(map(str, ids)),
               "--generate", str(max_new), "--out", str(out)]
        if activations:
            cmd += ["--activations", activations]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{res.stdout}{res.stderr}")
        info = json.loads(res.stdout.strip().splitlines()[-1])
        logits = np.fromfile(out, dtype="<f4").reshape(info["rows"], info["vocab"])
    return info["generated"], logits


def run_worker(model_dir: Path, gguf: Path, ids: list[int], max_new: int, meta: dict, worker: Path,
               activations: str | None) -> tuple[bool, list[int]]:
    """Models on the worker's own kernels (which ONNX Runtime alone cannot run): the worker's logits
    at every position of the prompt and of its greedy answer against the reference's."""
    _log(f"running {worker} model logits ({activations or 'default'} activations)")
    generated, ours = worker_logits(worker, model_dir, ids, max_new, activations)
    seq = (ids + generated)[: ours.shape[0]]
    ref = Reference(load(gguf)).logits(seq)
    cos = np.sum(ours * ref, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    err = np.max(np.abs(ours - ref))
    same = int(np.sum(np.argmax(ours, axis=1) == np.argmax(ref, axis=1)))
    _log(f"{len(seq)} positions: cosine mean {cos.mean():.6f}, worst {cos.min():.6f}; largest logit error "
         f"{err:.3f}; same argmax at {same}/{len(seq)}")
    # The worker's two int8 stages leave the logits within ~0.01 of the float ones; one int8
    # stage (its `int8` mode, or MatMulNBits at accuracy level 4) within a few.
    opts = meta["options"]
    if opts.get("kernels") == "morpheus":
        close = activations != "int8"
    else:
        close = opts["accuracy_level"] == 0 and opts.get("q4_1", "exact") == "exact"
    ok = bool(cos.min() > (0.9999 if close else 0.98))
    stops = set(meta["eos_token_ids"])
    return ok, [t for t in generated if t not in stops]


def run(model_dir: Path, gguf: Path, prompt: str, expect: str | None, max_new: int,
        worker: Path | None = None, activations: str | None = None, system: str | None = None) -> bool:
    """True when logits agree with the reference and, if `expect` is given, the answer contains it."""
    meta = json.loads((model_dir / "morpheus.json").read_text())
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    ids = tok.encode(_chat_prompt(meta, prompt, system), add_special_tokens=False).ids
    _log(f"prompt: {len(ids)} tokens")
    ok = True

    try:
        import llama_cpp  # noqa: PLC0415

        llm = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        theirs = llm.tokenize(_chat_prompt(meta, prompt, system).encode(), add_bos=False, special=True)
        same = list(theirs) == ids
        _log(f"tokenizer matches llama.cpp: {same}")
        ok &= same
    except ImportError:
        _log("llama_cpp not installed: tokenizer not compared")

    if meta["options"].get("kernels") == "morpheus" or worker is not None:
        good, out = run_worker(model_dir, gguf, ids, max_new, meta, worker or default_worker(), activations)
        ok &= good
        return _answer(tok, out, expect, ok)

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
    return _answer(tok, out, expect, ok)


def _answer(tok: Tokenizer, out: list[int], expect: str | None, ok: bool) -> bool:
    answer = tok.decode(out, skip_special_tokens=True)
    _log(f"answer: {answer!r}")
    if expect is not None:
        found = expect in answer
        _log(f"contains {expect!r}: {found}")
        ok &= found
    _log("OK" if ok else "FAILED")
    return ok
