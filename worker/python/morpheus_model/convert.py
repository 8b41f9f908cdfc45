"""GGUF Llama-family tensors -> decoder weights in kernel form."""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType

from . import blocks
from .gguf_source import GgufModel, LlamaConfig
from .graph import DecoderWeights, LayerWeights
from .progress import progress


def unpermute_order(rows: int, n_head: int) -> np.ndarray:
    """Row order that undoes llama.cpp's Q/K permutation.

    llama.cpp's converter reorders each head's rows from Hugging Face's rotate-half layout
    (first half, second half) to GGML's interleaved pairs: new = old.reshape(h, 2, d/2).swapaxes(1, 2).
    Taking rows in this order gives back the Hugging Face layout.
    """
    hd = rows // n_head
    idx = np.arange(rows).reshape(n_head, hd // 2, 2).swapaxes(1, 2).reshape(rows)
    return idx


# Float weights the converter takes (as 8-bit MatMulNBits weights, or as they are for vectors).
FLOAT_TYPES = (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16)


def served_types() -> str:
    return ", ".join(q.name for q in (*blocks.FORMATS, *FLOAT_TYPES))


def check_types(model: GgufModel) -> None:
    """Refuses a GGUF holding a tensor type the worker does not serve exactly (Q2_K, Q3_K, the IQ
    formats, ...), naming the tensor: re-quantising it would serve a different model."""
    for t in model.tensors.values():
        if t.qtype not in blocks.FORMATS and t.qtype not in FLOAT_TYPES:
            raise ValueError(f"{model.path.name}: tensor {t.name} is {t.qtype.name}, a type the worker does not "
                             f"serve (it serves {served_types()})")


def _w(model: GgufModel, name: str, kernels: str = "onnxruntime") -> blocks.NBits | blocks.GgmlBlocks:
    t = model.tensors[name]
    n, k = t.shape
    if kernels == "morpheus":
        raw = blocks.ggml_blocks(t.qtype, t.data, n, k)
        if raw is not None:
            return raw
    return blocks.from_raw(t.qtype, t.data, n, k)


def _vec(model: GgufModel, name: str) -> np.ndarray:
    t = model.tensors[name]
    return blocks.dequantize_raw(t.qtype, t.data, 1, int(np.prod(t.shape))).reshape(-1)


# Largest Q4_1 weight folded into one 8-bit kernel. Folding saves four small graph nodes (the
# per-block-minimum correction) but doubles the weight bytes the kernel reads; at batch 1 on CPU the
# nodes cost more for Q|K|V, O and down (<= 0.9M weights at SmolLM2's size), the bytes more for the
# larger gate|up (1.8M): measured, gate|up folded too was ~5% slower.
FOLD_MAX_WEIGHTS = 1 << 20


def _fold(w, fold_q4_1: bool):
    """`w` as one 8-bit kernel when it is Q4_1, folding is on and it is small enough (else unchanged)."""
    if isinstance(w, (blocks.GgmlBlocks, blocks.Stacked)) or not fold_q4_1 or w.mins is None or w.n * w.k > FOLD_MAX_WEIGHTS:
        return w
    try:
        return blocks.fold_q4_1(w)
    except ValueError:
        return w  # a block too far from zero: keep the exact 4-bit + correction form


def decoder_weights(model: GgufModel, fold_q4_1: bool = False, kernels: str = "onnxruntime") -> DecoderWeights:
    """All weights of `model`, Q/K back in rotate-half order (Llama), Q|K|V and gate|up fused.

    With `kernels="morpheus"`, weights in GGML block formats stay the GGUF's own blocks
    (`GgmlBlocks`, for the worker's `BlockMatMul`; fused weights of mixed formats `Stacked`); F16/F32
    weights, and every weight otherwise, take MatMulNBits form.

    With `fold_q4_1`, Q4_1 weights of up to `FOLD_MAX_WEIGHTS` become 8-bit kernels with their
    minimums folded into the zero points (`blocks.fold_q4_1`) instead of 4-bit kernels plus a
    per-block-minimum correction.
    """
    check_types(model)
    cfg: LlamaConfig = model.config
    layers = []
    for i in progress(range(cfg.num_layers), "convert layers"):
        p = f"blk.{i}"

        def w(name: str, p: str = p):
            return _w(model, f"{p}.{name}.weight", kernels)

        q, k, v = w("attn_q"), w("attn_k"), w("attn_v")
        q_order, k_order = np.arange(q.n), np.arange(k.n)
        if cfg.permuted_qk:
            q_order, k_order = unpermute_order(q.n, cfg.num_heads), unpermute_order(k.n, cfg.num_kv_heads)
            q, k = q.take_rows(q_order), k.take_rows(k_order)
        bias = None
        if f"{p}.attn_q.bias" in model.tensors:
            bias = np.concatenate([_vec(model, f"{p}.attn_q.bias")[q_order], _vec(model, f"{p}.attn_k.bias")[k_order],
                                   _vec(model, f"{p}.attn_v.bias")])
        norms = None
        if f"{p}.attn_q_norm.weight" in model.tensors:
            norms = (_vec(model, f"{p}.attn_q_norm.weight"), _vec(model, f"{p}.attn_k_norm.weight"))
        layers.append(
            LayerWeights(
                attn_norm=_vec(model, f"{p}.attn_norm.weight"),
                qkv=_fold(blocks.concat_rows([q, k, v]), fold_q4_1),
                o=_fold(w("attn_output"), fold_q4_1),
                ffn_norm=_vec(model, f"{p}.ffn_norm.weight"),
                gate_up=_fold(blocks.concat_rows([w("ffn_gate"), w("ffn_up")]), fold_q4_1),
                down=_fold(w("ffn_down"), fold_q4_1),
                qkv_bias=bias,
                qk_norms=norms,
                post_norms=(_vec(model, f"{p}.post_attention_norm.weight"), _vec(model, f"{p}.post_ffw_norm.weight"))
                if f"{p}.post_attention_norm.weight" in model.tensors else None,
            )
        )
    head_name = "output.weight" if "output.weight" in model.tensors else "token_embd.weight"
    head = _fold(_w(model, head_name, kernels), fold_q4_1)
    return DecoderWeights(
        embed=_embedding(model, kernels, head if head_name == "token_embd.weight" else None),
        layers=layers,
        out_norm=_vec(model, "output_norm.weight"),
        lm_head=head,
    )


def _embedding(model: GgufModel, kernels: str, tied_head) -> np.ndarray | blocks.GgmlBlocks:
    """The token embeddings: on the worker's kernels, the GGUF's blocks (the head's very object when
    tied, so the graph holds them once), looked up by `BlockGather`; else float32."""
    emb = model.tensors["token_embd.weight"]
    if kernels == "morpheus":
        if isinstance(tied_head, blocks.GgmlBlocks):
            return tied_head
        n, k = emb.shape
        try:
            table = blocks.ggml_blocks(emb.qtype, emb.data, n, k)
        except ValueError:
            table = None  # rows not a whole number of blocks: float32 below
        if table is not None:
            return table
    return blocks.dequantize_raw(emb.qtype, emb.data, *emb.shape)
