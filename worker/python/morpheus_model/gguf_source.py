"""Read a GGUF file of a Llama-family decoder (Llama, Qwen2, Qwen3, Gemma 3): hyper-parameters, tokenizer
data and raw tensors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType

from .gguf_file import GgufFile


# `general.architecture` values the converter takes.
ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")


@dataclass
class LlamaConfig:
    """Hyper-parameters of a Llama decoder, as the GGUF metadata states them."""

    num_layers: int
    hidden: int
    intermediate: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab: int
    context_length: int
    rope_theta: float
    rms_eps: float
    # `general.architecture`: llama (Q/K rows permuted by llama.cpp's converter, interleaved
    # rotary pairs), qwen2 (biases on Q, K, V; rotate-half rotary, rows as Hugging Face has them)
    # or qwen3 (as qwen2 without biases, with an RMSNorm over each head of Q and K).
    arch: str = "llama"
    # Llama 3.1+ RoPE scaling: per rotary pair, the factor its frequency is divided by
    # (llama.cpp's `rope_freqs.weight`), or None.
    rope_factors: np.ndarray | None = None
    # Gemma 3 (as llama.cpp runs it): sliding-window attention (`sliding_window` positions) on
    # every layer but each sixth, whose RoPE base is 10,000 (the global layers' is `rope_theta`);
    # the embeddings scaled by sqrt(hidden); GELU (tanh) instead of SiLU; norms after attention
    # and after the MLP too.
    sliding_window: int | None = None

    @property
    def gemma(self) -> bool:
        return self.arch == "gemma3"

    def is_local(self, layer: int) -> bool:
        """Whether `layer` attends within the sliding window (Gemma 3: five of every six)."""
        return self.sliding_window is not None and layer % 6 < 5

    def layer_rope_theta(self, layer: int) -> float:
        return 10000.0 if self.gemma and self.is_local(layer) else self.rope_theta

    @property
    def permuted_qk(self) -> bool:
        """Whether llama.cpp's converter reordered the Q/K rows for interleaved rotary pairs."""
        return self.arch == "llama"


@dataclass
class TokenizerData:
    """The tokenizer the GGUF carries (`tokenizer.ggml.*`)."""

    model: str
    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    add_bos: bool
    chat_template: str | None
    # SentencePiece (`llama`) tokenizers: each token's score (merge priority), the unknown token,
    # and whether a space is put before the text.
    scores: list[float] = field(default_factory=list)
    unk_id: int | None = None
    add_space_prefix: bool = True


@dataclass
class RawTensor:
    """One tensor as stored: GGML type, logical shape (rows, cols) and its bytes or values."""

    name: str
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass
class GgufModel:
    """A Llama GGUF: config, tokenizer and tensors by GGUF name."""

    path: Path
    config: LlamaConfig
    tokenizer: TokenizerData
    tensors: dict[str, RawTensor] = field(default_factory=dict)


def _field(reader: GgufFile, key: str, default=None):
    return reader.fields.get(key, default)


def load(path: Path) -> GgufModel:
    """Parse `path` (memory-mapped; tensor data is not copied)."""
    reader = GgufFile(path)
    arch = _field(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(f"{path}: architecture {arch!r} is not supported (the worker serves "
                         f"{', '.join(ARCHITECTURES)})")
    a = arch
    hidden = int(_field(reader, f"{a}.embedding_length"))
    heads = int(_field(reader, f"{a}.attention.head_count"))
    tokens = [t if isinstance(t, str) else bytes(t).decode("utf-8") for t in _field(reader, "tokenizer.ggml.tokens")]
    config = LlamaConfig(
        num_layers=int(_field(reader, f"{a}.block_count")),
        hidden=hidden,
        intermediate=int(_field(reader, f"{a}.feed_forward_length")),
        num_heads=heads,
        num_kv_heads=int(_field(reader, f"{a}.attention.head_count_kv", heads)),
        head_dim=int(_field(reader, f"{a}.attention.key_length", hidden // heads)),
        vocab=int(_field(reader, f"{a}.vocab_size", len(tokens))),
        context_length=int(_field(reader, f"{a}.context_length", 2048)),
        rope_theta=float(_field(reader, f"{a}.rope.freq_base", 10000.0)),
        rms_eps=float(_field(reader, f"{a}.attention.layer_norm_rms_epsilon", 1e-5)),
        arch=arch,
        sliding_window=_opt_int(_field(reader, f"{a}.attention.sliding_window")) if arch == "gemma3" else None,
    )
    tok = TokenizerData(
        model=str(_field(reader, "tokenizer.ggml.model", "gpt2")),
        pre=str(_field(reader, "tokenizer.ggml.pre", "default")),
        tokens=tokens,
        token_types=[int(t) for t in _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))],
        merges=[m if isinstance(m, str) else bytes(m).decode("utf-8") for m in _field(reader, "tokenizer.ggml.merges", [])],
        bos_id=_opt_int(_field(reader, "tokenizer.ggml.bos_token_id")),
        eos_id=_opt_int(_field(reader, "tokenizer.ggml.eos_token_id")),
        pad_id=_opt_int(_field(reader, "tokenizer.ggml.padding_token_id")),
        add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        chat_template=_field(reader, "tokenizer.chat_template"),
        scores=[float(v) for v in _field(reader, "tokenizer.ggml.scores", [])],
        unk_id=_opt_int(_field(reader, "tokenizer.ggml.unknown_token_id")),
        add_space_prefix=bool(_field(reader, "tokenizer.ggml.add_space_prefix", True)),
    )
    model = GgufModel(path=path, config=config, tokenizer=tok)
    for t in reader.tensors:
        # GGUF lists dimensions fastest-first; a weight of `n` outputs by `k` inputs is (k, n).
        shape = tuple(reversed(t.dims))
        model.tensors[t.name] = RawTensor(t.name, GGMLQuantizationType(t.tensor_type), shape, t.data)
    factors = model.tensors.get("rope_freqs.weight")
    if factors is not None:
        config.rope_factors = np.asarray(factors.data, dtype=np.float32).reshape(-1)
    return model


def _opt_int(v):
    return None if v is None else int(v)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
