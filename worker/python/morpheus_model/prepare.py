"""Prepare a model directory: model.onnx + tokenizer.json + morpheus.json, cached by source hash,
and the source GGUF itself (`weights.gguf`): the published weights, which the model's Merkle root
covers, whatever the build beside it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import onnx

from . import convert, graph, tokenizer_json
from .gguf_source import GgufModel, load, sha256_file

# Bump when the produced files change for the same source.
CONVERTER_VERSION = 9
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<|end_of_text|>")
# The published weights file kept in every directory, under one name whatever the download's.
WEIGHTS_FILE = "weights.gguf"
# What morpheus-worker records about the root; stale once the weights file is replaced.
MERKLE_KEYS = ("merkle_root", "merkle_version", "merkle_file")


def _log(msg: str) -> None:
    print(f"[prepare] {msg}", file=sys.stderr, flush=True)


KERNELS = ("morpheus", "onnxruntime")


def _options(max_positions: int, accuracy_level: int, q4_1: str, kernels: str) -> dict:
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r} (one of {', '.join(KERNELS)})")
    return {
        "converter_version": CONVERTER_VERSION,
        "max_positions": max_positions,
        "accuracy_level": accuracy_level,
        "q4_1": q4_1,
        "kernels": kernels,
    }


def resolve_q4_1(q4_1: str, accuracy_level: int) -> str:
    """`auto`: `int8` (folded 8-bit kernels, see `blocks.fold_q4_1`) when activations are int8
    anyway (accuracy level 4), else `exact` (4-bit kernels plus the per-block-minimum matmul)."""
    if q4_1 == "auto":
        return "int8" if accuracy_level == 4 else "exact"
    if q4_1 not in ("int8", "exact"):
        raise ValueError(f"unknown Q4_1 mode {q4_1!r}")
    return q4_1


# The graph's weights, beside it (ONNX external data): ONNX Runtime maps the file instead of
# copying each weight out of the parsed graph, so a served model holds one copy of its weights
# (not two at load), and rows a model only looks up (the token embeddings) are read from the page
# cache as they are used.
ONNX_DATA = "model.onnx.data"


def save_graph(build: Callable[[graph.WeightsFile], onnx.ModelProto], out: Path) -> None:
    """Writes `model.onnx` and its weights (`ONNX_DATA`) into `out`, replacing both at once:
    `build` makes the graph, writing each weight into the new `ONNX_DATA` as it goes; both files
    are written into a new directory inside `out`, then moved (the weights first)."""
    tmp = out / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    data = graph.WeightsFile(tmp / ONNX_DATA, ONNX_DATA)
    try:
        proto = build(data)
    finally:
        data.close()
    onnx.save_model(proto, str(tmp / "model.onnx"))
    (tmp / ONNX_DATA).replace(out / ONNX_DATA)
    (tmp / "model.onnx").replace(out / "model.onnx")
    tmp.rmdir()


def is_current(out: Path, source_sha: str, options: dict) -> bool:
    """Whether `out` already holds this source prepared with these options."""
    meta_path = out / "morpheus.json"
    files = ("model.onnx", ONNX_DATA, "tokenizer.json")
    if not meta_path.exists() or not all((out / f).exists() for f in files):
        return False
    meta = json.loads(meta_path.read_text())
    return (
        meta.get("source", {}).get("sha256") == source_sha
        and meta.get("options") == options
        and meta.get("weights_file") == WEIGHTS_FILE
    )


def keep_weights(gguf_path: Path, out: Path, source_sha: str) -> bool:
    """Keeps the source GGUF in `out` as `WEIGHTS_FILE`: a hard link on the same filesystem (no
    second copy of the weights), else a copy. Returns whether the file was (re)placed."""
    dst = out / WEIGHTS_FILE
    if dst.exists() and (
        os.path.samefile(gguf_path, dst)
        or (dst.stat().st_size == gguf_path.stat().st_size and sha256_file(dst) == source_sha)
    ):
        return False
    tmp = out / (WEIGHTS_FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(gguf_path, tmp)
        how = "hard link"
    except OSError:
        shutil.copyfile(gguf_path, tmp)
        how = "copy"
    tmp.replace(dst)
    _log(f"kept the weights as {dst} ({how} of {gguf_path})")
    return True


def _forget_merkle_root(out: Path) -> None:
    """A root recorded over a weights file since replaced no longer holds."""
    meta_path = out / "morpheus.json"
    meta = json.loads(meta_path.read_text())
    if any(k in meta for k in MERKLE_KEYS):
        for k in MERKLE_KEYS:
            meta.pop(k, None)
        meta_path.write_text(json.dumps(meta, indent=2))


def metadata(model: GgufModel, name: str, source_sha: str, options: dict) -> dict:
    """morpheus.json: what the worker needs to serve the model."""
    c, t = model.config, model.tokenizer
    stops = sorted({i for i, tok in enumerate(t.tokens) if tok in STOP_TOKENS} | ({t.eos_id} if t.eos_id is not None else set()))
    return {
        "format": 1,
        "name": name,
        "architecture": c.arch,
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        # The published weights (the source GGUF, as downloaded): what the model id is registered
        # by and liveness proofs read, so every build of the same file is the same model.
        "weights_file": WEIGHTS_FILE,
        "weights_format": "gguf",
        "source": {"file": model.path.name, "sha256": source_sha},
        "options": options,
        "num_layers": c.num_layers,
        "hidden_size": c.hidden,
        "intermediate_size": c.intermediate,
        "num_heads": c.num_heads,
        "num_kv_heads": c.num_kv_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab,
        "context_length": min(c.context_length, options["max_positions"]),
        "rope_theta": c.rope_theta,
        "bos_token_id": t.bos_id,
        "eos_token_ids": stops,
        "bos_token": None if t.bos_id is None else t.tokens[t.bos_id],
        "eos_token": None if t.eos_id is None else t.tokens[t.eos_id],
        "add_bos_token": t.add_bos,
        "chat_template": t.chat_template,
        # How the decoder treats its cache: rows right-padded, lengths from the attention mask,
        # `present.*` may alias `past_key_values.*` of any larger length (updated in place).
        "kv_cache": "shared-buffer",
        "logits": "last",
    }


def prepare(gguf_path: Path, out: Path, name: str, max_positions: int = 2048, accuracy_level: int = 4,
            force: bool = False, q4_1: str = "auto", kernels: str = "morpheus") -> Path:
    """Convert `gguf_path` into `out` unless it is already there, and keep `gguf_path` beside the
    build as `WEIGHTS_FILE`; returns `out`.

    `kernels`: `morpheus` keeps Q4_1/Q8_0 weights as the GGUF's blocks for the worker's own CPU
    operator (fewest bytes per token; runs only in morpheus-worker); `onnxruntime` uses ONNX
    Runtime's `MatMulNBits` only (any ONNX Runtime, CUDA included).
    """
    _log(f"hashing {gguf_path}")
    sha = sha256_file(gguf_path)
    options = _options(max_positions, accuracy_level, resolve_q4_1(q4_1, accuracy_level), kernels)
    if not force and is_current(out, sha, options):
        _log(f"{out} is up to date (source sha256 {sha[:16]}...)")
        if keep_weights(gguf_path, out, sha):
            _forget_merkle_root(out)
        return out
    out.mkdir(parents=True, exist_ok=True)
    keep_weights(gguf_path, out, sha)
    model = load(gguf_path)
    c = model.config
    _log(
        f"{name}: {c.num_layers} layers, width {c.hidden}, heads {c.num_heads}/{c.num_kv_heads}, "
        f"vocab {c.vocab}, rope theta {c.rope_theta:g}"
    )
    # The tokenizer first: a GGUF whose tokenizer cannot be served is refused before the long part.
    tokenizer = tokenizer_json.build(model.tokenizer)
    weights = convert.decoder_weights(model, fold_q4_1=options["q4_1"] == "int8", kernels=kernels)
    _log(f"building the ONNX graph into {out / 'model.onnx'} and {out / ONNX_DATA}")
    save_graph(lambda data: graph.build(weights, c, max_positions=max_positions, accuracy_level=accuracy_level,
                                        data=data), out)
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (out / "morpheus.json").write_text(json.dumps(metadata(model, name, sha, options), indent=2))
    _log("done")
    return out
