"""A plain numpy forward pass over the GGUF's dequantised weights, as llama.cpp computes it.

It reads Q/K in GGUF order and applies GGML's rotary embedding as llama.cpp does per architecture
(interleaved pairs for Llama, whose Q/K rows llama.cpp's converter permuted; rotate-half for Qwen), so
agreeing with the ONNX decoder (rotate-half on un-permuted rows) checks the conversion, not just the
arithmetic.
"""

from __future__ import annotations

import numpy as np

from . import blocks
from .gguf_source import GgufModel


class Reference:
    """Dequantised float32 weights of a GGUF Llama and its forward pass."""

    def __init__(self, model: GgufModel) -> None:
        self.cfg = model.config
        self.t = {}
        for name, t in model.tensors.items():
            n = t.shape[0] if len(t.shape) == 2 else 1
            k = t.shape[-1]
            self.t[name] = blocks.dequantize_raw(t.qtype, t.data, n, k)
        self.head = self.t.get("output.weight", self.t["token_embd.weight"])

    def _rms(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        var = np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)
        return (x / np.sqrt(var + self.cfg.rms_eps)).astype(np.float32) * w.reshape(-1)

    def _rope_interleaved(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        # x [seq, heads, hd]; pairs (2i, 2i+1) rotate by pos * theta^(-2i/hd).
        hd = x.shape[-1]
        ang = pos[:, None].astype(np.float64) * self._inv_freq(hd)[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    def _inv_freq(self, hd: int, theta: float | None = None) -> np.ndarray:
        theta = self.cfg.rope_theta if theta is None else theta
        inv = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
        if self.cfg.rope_factors is not None:
            inv = inv / self.cfg.rope_factors.astype(np.float64)
        return inv

    def _rope_neox(self, x: np.ndarray, pos: np.ndarray, theta: float) -> np.ndarray:
        # Qwen's and Gemma's GGUF rows as Hugging Face has them: pair (i, i + hd/2) rotates.
        hd = x.shape[-1]
        ang = pos[:, None].astype(np.float64) * self._inv_freq(hd, theta)[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1).astype(np.float32)

    def _rope(self, x: np.ndarray, pos: np.ndarray, layer: int) -> np.ndarray:
        if self.cfg.permuted_qk:
            return self._rope_interleaved(x, pos)
        return self._rope_neox(x, pos, self.cfg.layer_rope_theta(layer))

    def _proj(self, h: np.ndarray, name: str) -> np.ndarray:
        y = h @ self.t[f"{name}.weight"].T
        bias = self.t.get(f"{name}.bias")
        return y if bias is None else y + bias.reshape(-1)

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits [seq, vocab] for a whole sequence."""
        c = self.cfg
        s = len(ids)
        pos = np.arange(s)
        x = self.t["token_embd.weight"][np.asarray(ids)]
        if c.gemma:
            x = x * np.sqrt(np.float32(c.hidden))
        causal = np.triu(np.full((s, s), -np.inf, dtype=np.float32), 1)
        # llama.cpp's sliding window: position p sees q when p - q < window.
        window = np.where(pos[:, None] - pos[None, :] >= (c.sliding_window or s + 1), -np.inf, 0.0).astype(np.float32)
        group = c.num_heads // c.num_kv_heads
        for i in range(c.num_layers):
            mask = causal + window if c.is_local(i) else causal
            p = f"blk.{i}"
            h = self._rms(x, self.t[f"{p}.attn_norm.weight"])
            q = self._proj(h, f"{p}.attn_q").reshape(s, c.num_heads, c.head_dim)
            k = self._proj(h, f"{p}.attn_k").reshape(s, c.num_kv_heads, c.head_dim)
            v = self._proj(h, f"{p}.attn_v").reshape(s, c.num_kv_heads, c.head_dim)
            if f"{p}.attn_q_norm.weight" in self.t:
                q = self._rms(q, self.t[f"{p}.attn_q_norm.weight"])
                k = self._rms(k, self.t[f"{p}.attn_k_norm.weight"])
            q, k = self._rope(q, pos, i), self._rope(k, pos, i)
            k = np.repeat(k, group, axis=1)
            v = np.repeat(v, group, axis=1)
            att = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(c.head_dim) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hqk,khd->qhd", att, v).reshape(s, -1) @ self.t[f"{p}.attn_output.weight"].T
            if c.gemma:
                o = self._rms(o, self.t[f"{p}.post_attention_norm.weight"])
            x = x + o
            h = self._rms(x, self.t[f"{p}.ffn_norm.weight"])
            g = h @ self.t[f"{p}.ffn_gate.weight"].T
            u = h @ self.t[f"{p}.ffn_up.weight"].T
            if c.gemma:
                # GELU, tanh form (GGML's `ggml_gelu`).
                act = 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g**3)))
            else:
                act = g / (1.0 + np.exp(-g))
            d = (act * u) @ self.t[f"{p}.ffn_down.weight"].T
            if c.gemma:
                d = self._rms(d, self.t[f"{p}.post_ffw_norm.weight"])
            x = x + d
        return self._rms(x, self.t["output_norm.weight"]) @ self.head.T
