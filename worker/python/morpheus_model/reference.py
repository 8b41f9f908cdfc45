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

    def _inv_freq(self, hd: int) -> np.ndarray:
        inv = 1.0 / (self.cfg.rope_theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
        if self.cfg.rope_factors is not None:
            inv = inv / self.cfg.rope_factors.astype(np.float64)
        return inv

    def _rope_neox(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        # Qwen's GGUF rows as Hugging Face has them: pair (i, i + hd/2) rotates.
        hd = x.shape[-1]
        ang = pos[:, None].astype(np.float64) * self._inv_freq(hd)[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1).astype(np.float32)

    def _rope(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return self._rope_interleaved(x, pos) if self.cfg.permuted_qk else self._rope_neox(x, pos)

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
        mask = np.triu(np.full((s, s), -np.inf, dtype=np.float32), 1)
        group = c.num_heads // c.num_kv_heads
        for i in range(c.num_layers):
            p = f"blk.{i}"
            h = self._rms(x, self.t[f"{p}.attn_norm.weight"])
            q = self._proj(h, f"{p}.attn_q").reshape(s, c.num_heads, c.head_dim)
            k = self._proj(h, f"{p}.attn_k").reshape(s, c.num_kv_heads, c.head_dim)
            v = self._proj(h, f"{p}.attn_v").reshape(s, c.num_kv_heads, c.head_dim)
            if f"{p}.attn_q_norm.weight" in self.t:
                q = self._rms(q, self.t[f"{p}.attn_q_norm.weight"])
                k = self._rms(k, self.t[f"{p}.attn_k_norm.weight"])
            q, k = self._rope(q, pos), self._rope(k, pos)
            k = np.repeat(k, group, axis=1)
            v = np.repeat(v, group, axis=1)
            att = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(c.head_dim) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hqk,khd->qhd", att, v).reshape(s, -1)
            x = x + o @ self.t[f"{p}.attn_output.weight"].T
            h = self._rms(x, self.t[f"{p}.ffn_norm.weight"])
            g = h @ self.t[f"{p}.ffn_gate.weight"].T
            u = h @ self.t[f"{p}.ffn_up.weight"].T
            x = x + ((g / (1.0 + np.exp(-g))) * u) @ self.t[f"{p}.ffn_down.weight"].T
        return self._rms(x, self.t["output_norm.weight"]) @ self.head.T
