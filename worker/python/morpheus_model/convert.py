"""GGUF Llama tensors -> decoder weights in kernel form."""

from __future__ import annotations

import numpy as np

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


def _w(model: GgufModel, name: str) -> blocks.NBits:
    t = model.tensors[name]
    n, k = t.shape
    return blocks.from_raw(t.qtype, t.data, n, k)


def _vec(model: GgufModel, name: str) -> np.ndarray:
    t = model.tensors[name]
    return blocks.dequantize_raw(t.qtype, t.data, 1, int(np.prod(t.shape))).reshape(-1)


def decoder_weights(model: GgufModel) -> DecoderWeights:
    """All weights of `model`, Q/K back in rotate-half order, Q|K|V and gate|up fused."""
    cfg: LlamaConfig = model.config
    layers = []
    for i in progress(range(cfg.num_layers), "convert layers"):
        p = f"blk.{i}"
        q = _w(model, f"{p}.attn_q.weight")
        k = _w(model, f"{p}.attn_k.weight")
        v = _w(model, f"{p}.attn_v.weight")
        q = q.take_rows(unpermute_order(q.n, cfg.num_heads))
        k = k.take_rows(unpermute_order(k.n, cfg.num_kv_heads))
        layers.append(
            LayerWeights(
                attn_norm=_vec(model, f"{p}.attn_norm.weight"),
                qkv=blocks.concat_rows([q, k, v]),
                o=_w(model, f"{p}.attn_output.weight"),
                ffn_norm=_vec(model, f"{p}.ffn_norm.weight"),
                gate_up=blocks.concat_rows(
                    [_w(model, f"{p}.ffn_gate.weight"), _w(model, f"{p}.ffn_up.weight")]
                ),
                down=_w(model, f"{p}.ffn_down.weight"),
            )
        )
    emb = model.tensors["token_embd.weight"]
    embed = blocks.dequantize_raw(emb.qtype, emb.data, *emb.shape)
    head_name = "output.weight" if "output.weight" in model.tensors else "token_embd.weight"
    return DecoderWeights(
        embed=embed,
        layers=layers,
        out_norm=_vec(model, "output_norm.weight"),
        lm_head=_w(model, head_name),
    )
