"""Build the ONNX decoder: Hugging Face optimum's KV-cache interface, ONNX Runtime's fast kernels inside.

Interface (what optimum's decoders expose, so one runtime serves both):
  inputs  input_ids [batch, seq] int64, attention_mask [batch, total] int64,
          position_ids [batch, seq] int64, past_key_values.{i}.key|value [batch, kv_heads, past, head_dim],
          last_index [batch] int64 (ours: the position within `seq` whose logits each row returns)
  outputs logits [batch, 1, vocab] (that position only), present.{i}.key|value

Inside: `GroupQueryAttention` (com.microsoft) with rotary embedding; `seqlens_k` is the row sum of
attention_mask minus one, so rows are right-padded and each row has its own length. When the caller
binds `present.*` to the very buffer it passes as `past_key_values.*` (sized to the maximum length),
ONNX Runtime appends in place and the cache is never copied between steps. Positions follow from the
lengths, so `position_ids` is accepted for compatibility and not read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .blocks import BLOCK, GROUP_BLOCK_BYTES, GROUP_ROWS, GgmlBlocks, NBits, Stacked, pack_groups

MS = "com.microsoft"
MORPHEUS = "ai.morpheus"  # the worker's custom operators (worker/src/kernels)
IR_VERSION = 10  # ONNX Runtime 1.31 reads IR <= 13; onnx 1.23 would write 14.
OPSET = 21


@dataclass
class LayerWeights:
    """One decoder layer, already in kernel form."""

    attn_norm: np.ndarray
    qkv: NBits | GgmlBlocks | Stacked  # rows: q (heads*hd) | k | v, q and k in Hugging Face (rotate-half) order
    o: NBits | GgmlBlocks
    ffn_norm: np.ndarray
    gate_up: NBits | GgmlBlocks | Stacked  # rows: gate | up
    down: NBits | GgmlBlocks
    qkv_bias: np.ndarray | None = None  # Qwen2: added to Q|K|V
    qk_norms: tuple[np.ndarray, np.ndarray] | None = None  # Qwen3, Gemma 3: RMSNorm weights over each head of Q, K
    post_norms: tuple[np.ndarray, np.ndarray] | None = None  # Gemma 3: after attention, after the MLP


@dataclass
class DecoderWeights:
    """Everything the graph needs."""

    embed: np.ndarray | GgmlBlocks  # float32 [vocab, hidden], or the GGUF's blocks (`BlockGather`)
    layers: list[LayerWeights]
    out_norm: np.ndarray
    lm_head: NBits | GgmlBlocks


class WeightsFile:
    """The graph's weights written to their external-data file as the graph is built (ONNX
    external data: `location`, `offset`, `length` per tensor), so the converter never holds a
    weight's bytes twice, and a packed weight is packed and written a slice of rows at a time."""

    # Weights of 1 MiB and more start at a multiple of 64 KiB, as onnx's own writer places them:
    # ONNX Runtime maps such a weight in place instead of reading it into memory.
    ALIGN, ALIGN_FROM = 1 << 16, 1 << 20
    # Smaller tensors stay inside the graph (onnx's `size_threshold` as this converter used it).
    INLINE_BELOW = 1024

    def __init__(self, path: Path, location: str) -> None:
        self.file: BinaryIO = open(path, "wb")  # noqa: SIM115 (closed by `close`)
        self.location = location

    def tensor(self, name: str, dtype: np.dtype, shape: tuple[int, ...], chunks: Iterable[np.ndarray]) -> onnx.TensorProto:
        """A tensor whose bytes are `chunks` (C order, written as they come)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        offset = self.file.tell()
        if nbytes >= self.ALIGN_FROM and offset % self.ALIGN:
            self.file.write(bytes(self.ALIGN - offset % self.ALIGN))
            offset = self.file.tell()
        for chunk in chunks:
            self.file.write(memoryview(np.ascontiguousarray(chunk, dtype=dtype)).cast("B"))
        if self.file.tell() - offset != nbytes:
            raise ValueError(f"{name}: wrote {self.file.tell() - offset} bytes for a tensor of {nbytes}")
        t = onnx.TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), dims=shape,
                             data_location=TensorProto.EXTERNAL)
        for key, value in (("location", self.location), ("offset", str(offset)), ("length", str(nbytes))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        return t

    def close(self) -> None:
        self.file.close()


# Rows of a packed weight packed and written at a time (a multiple of the 16-row group).
PACK_ROWS = 1 << 14


class _Builder:
    def __init__(self, accuracy_level: int, weights: WeightsFile | None = None) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.accuracy_level = accuracy_level
        self.weights = weights
        self.uses_morpheus = False
        self._n = 0
        self._packed: dict[int, tuple[GgmlBlocks, str]] = {}

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def init(self, name: str, arr: np.ndarray) -> str:
        if self.weights is not None and arr.nbytes >= WeightsFile.INLINE_BELOW:
            self.inits.append(self.weights.tensor(name, arr.dtype, arr.shape, [arr]))
        else:
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def packed(self, name: str, w: GgmlBlocks) -> str:
        """`w` packed for the worker's operators, once: a weight two nodes read (an embedding
        table tied to the output head) is one initializer."""
        self.uses_morpheus = True
        if id(w) not in self._packed:
            slices = (GgmlBlocks(w.qtype, min(PACK_ROWS, w.n - lo), w.k, w.raw[lo:lo + PACK_ROWS])
                      for lo in range(0, w.n, PACK_ROWS))
            if self.weights is None:
                self.init(name, np.concatenate([pack_groups(part) for part in slices]))
            else:
                shape = (-(-w.n // GROUP_ROWS), w.raw.shape[1], GROUP_BLOCK_BYTES[w.qtype])
                self.inits.append(self.weights.tensor(name, np.uint8, shape, (pack_groups(part) for part in slices)))
            self._packed[id(w)] = (w, name)
        return self._packed[id(w)][1]

    def const_i64(self, name: str, values) -> str:
        return self.init(name, np.asarray(values, dtype=np.int64))

    def node(self, op: str, inputs: list[str], n_out: int = 1, domain: str = "", outputs=None, **attrs):
        name = self.name(op)
        outs = outputs or [f"{name}_out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, domain=domain, **attrs))
        return outs[0] if len(outs) == 1 else outs

    def linear(self, x: str, w: NBits | GgmlBlocks | Stacked, prefix: str, activation: str = "none",
               norm: str = "", eps: float = 1e-5, residual: str = "") -> str:
        """`act(x) @ w^T (+ residual)`. GGML blocks only: `activation="swiglu"` takes x = gate | up;
        `"rmsnorm"` normalises x with the weight named `norm` first; `"geglu"` is `gelu(gate) * up`
        (GELU's tanh form, Gemma's MLP); `residual` is added after."""
        if isinstance(w, Stacked):
            if residual:
                raise ValueError(f"{prefix}: a residual is only added to one BlockMatMul")
            ys = [self.linear(x, part, f"{prefix}.{i}", activation, norm, eps) for i, part in enumerate(w.parts)]
            return self.node("Concat", ys, axis=-1)
        if isinstance(w, GgmlBlocks):
            b = self.packed(f"{prefix}.blocks", w)
            inputs = [x, b, norm, residual]
            while inputs[-1] == "":
                inputs.pop()
            attrs = {"epsilon": float(eps)} if activation == "rmsnorm" else {}
            return self.node("BlockMatMul", inputs, domain=MORPHEUS, format=w.format, N=w.n, K=w.k,
                             activation=activation, **attrs)
        if norm or residual:
            raise ValueError(f"{prefix}: norms and residuals are only fused into BlockMatMul")
        if activation != "none":
            raise ValueError(f"{prefix}: {activation} is only fused into BlockMatMul")
        kb = w.k // BLOCK
        b = self.init(f"{prefix}.qweight", w.packed.reshape(w.n, kb, -1))
        s = self.init(f"{prefix}.scales", w.scales.reshape(-1).astype(np.float32))
        inputs = [x, b, s]
        if w.zero_points is not None:
            inputs.append(self.init(f"{prefix}.zero_points", w.zero_points.reshape(-1)))
        y = self.node(
            "MatMulNBits",
            inputs,
            domain=MS,
            K=w.k,
            N=w.n,
            bits=w.bits,
            block_size=BLOCK,
            accuracy_level=self.accuracy_level,
        )
        if w.mins is None:
            return y
        # Q4_1 offsets: sum_k x_k * m_block(k) = blocksum(x) @ m^T, a matmul K/32 wide.
        shape = self.const_i64(f"{prefix}.block_shape", [0, 0, kb, BLOCK])
        xb = self.node("Reshape", [x, shape])
        axes = self.const_i64(f"{prefix}.block_axes", [-1])
        sums = self.node("ReduceSum", [xb, axes], keepdims=0)
        mins_t = self.init(f"{prefix}.mins", np.ascontiguousarray(w.mins.T.astype(np.float32)))
        corr = self.node("MatMul", [sums, mins_t])
        return self.node("Add", [y, corr])


def rope_cache(max_pos: int, head_dim: int, theta: float,
               factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [max_pos, head_dim/2] for rotate-half rotary embedding; `factors` (Llama 3.1+'s
    RoPE scaling, one per pair) divide the frequencies as llama.cpp's `rope_freqs` do."""
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if factors is not None:
        inv = inv / factors.astype(np.float64)
    ang = np.outer(np.arange(max_pos, dtype=np.float64), inv)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def build(weights: DecoderWeights, cfg, max_positions: int, accuracy_level: int = 4,
          data: WeightsFile | None = None) -> onnx.ModelProto:
    """The decoder graph for `cfg` (a `LlamaConfig`); with `data`, its weights are written there
    as they are made, and the graph refers to them."""
    bld = _Builder(accuracy_level, data)
    L, H, hd = cfg.num_layers, cfg.hidden, cfg.head_dim
    nh, nkv = cfg.num_heads, cfg.num_kv_heads
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64

    inputs = [
        helper.make_tensor_value_info("input_ids", i64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", i64, ["batch_size", "total_sequence_length"]),
        helper.make_tensor_value_info("position_ids", i64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("last_index", i64, ["batch_size"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch_size", 1, cfg.vocab])]
    for i in range(L):
        for kind in ("key", "value"):
            inputs.append(
                helper.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}", f32, ["batch_size", nkv, "past_sequence_length", hd]
                )
            )
            outputs.append(
                helper.make_tensor_value_info(
                    f"present.{i}.{kind}", f32, ["batch_size", nkv, "present_sequence_length", hd]
                )
            )

    # Lengths for GroupQueryAttention, from the mask.
    one = bld.const_i64("one", 1)
    axis1 = bld.const_i64("axis1", [1])
    mask_sum = bld.node("ReduceSum", ["attention_mask", axis1], keepdims=0)
    seqlens = bld.node("Cast", [bld.node("Sub", [mask_sum, one])], to=TensorProto.INT32)
    mask_shape = bld.node("Shape", ["attention_mask"])
    total = bld.node("Cast", [bld.node("Gather", [mask_shape, one], axis=0)], to=TensorProto.INT32)
    # One rotary cache per RoPE base (Gemma 3's local layers have their own).
    rope: dict[float, tuple[str, str]] = {}
    for i in range(L):
        theta = cfg.layer_rope_theta(i)
        if theta not in rope:
            cos, sin = rope_cache(max_positions, hd, theta, cfg.rope_factors)
            tag = "" if not rope else f".{len(rope)}"
            rope[theta] = (bld.init(f"rope.cos{tag}", cos), bld.init(f"rope.sin{tag}", sin))

    if isinstance(weights.embed, GgmlBlocks):
        # The rows as GGML dequantises them, read from the GGUF's blocks (the head's own bytes
        # when the two are tied): no float copy of the table.
        e = weights.embed
        x = bld.node("BlockGather", [bld.packed("embed_tokens.blocks", e), "input_ids"], domain=MORPHEUS,
                     format=e.format, N=e.n, K=e.k)
    else:
        x = bld.node("Gather", [bld.init("embed_tokens.weight", weights.embed.astype(np.float32)), "input_ids"],
                     axis=0)
    if cfg.gemma:
        x = bld.node("Mul", [x, bld.init("embed_scale", np.asarray(np.sqrt(np.float32(H)), dtype=np.float32))])

    def head_norm(x: str, heads: int, weight: np.ndarray, name: str) -> str:
        # RMSNorm over each head: [b, s, heads*hd] -> [b, s, heads, hd] and back.
        split = bld.node("Reshape", [x, bld.const_i64(f"{name}.heads", [0, 0, heads, hd])])
        normed = bld.node("SimplifiedLayerNormalization", [split, bld.init(f"{name}.weight", weight)],
                          axis=-1, epsilon=cfg.rms_eps, stash_type=1)
        return bld.node("Reshape", [normed, bld.const_i64(f"{name}.flat", [0, 0, heads * hd])])

    def attention(i: int, qkv: str) -> str:
        lw = weights.layers[i]
        if lw.qkv_bias is not None:
            qkv = bld.node("Add", [qkv, bld.init(f"layers.{i}.qkv_bias", lw.qkv_bias.astype(np.float32))])
        qkv_in = [qkv, "", ""]
        if lw.qk_norms is not None:
            sizes = bld.const_i64(f"layers.{i}.qkv_sizes", [nh * hd, nkv * hd, nkv * hd])
            q, k, v = bld.node("Split", [qkv, sizes], n_out=3, axis=-1)
            q = head_norm(q, nh, lw.qk_norms[0], f"layers.{i}.q_norm")
            k = head_norm(k, nkv, lw.qk_norms[1], f"layers.{i}.k_norm")
            qkv_in = [q, k, v]
        cos_n, sin_n = rope[cfg.layer_rope_theta(i)]
        # A position sees itself and the `sliding_window - 1` before it, in llama.cpp and in
        # ONNX Runtime's `local_window_size` alike (checked position by position by `verify`).
        window = {"local_window_size": cfg.sliding_window} if cfg.is_local(i) else {}
        return bld.node(
            "GroupQueryAttention",
            [*qkv_in, f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens, total, cos_n, sin_n],
            **window,
            domain=MS,
            outputs=[f"layers.{i}.attn_out", f"present.{i}.key", f"present.{i}.value"],
            num_heads=nh,
            kv_num_heads=nkv,
            do_rotary=1,
            rotary_interleaved=0,
            scale=float(1.0 / np.sqrt(hd)),
        )[0]

    def last_position(x: str) -> str:
        # Only one position's logits per row are needed to generate (each row's last real token:
        # prompts of different lengths run together right-padded): skip the vocab matmul for the rest.
        index = bld.node("Unsqueeze", ["last_index", axis1])
        return bld.node("Unsqueeze", [bld.node("GatherND", [x, index], batch_dims=1), axis1])

    blocks_only = isinstance(weights.lm_head, GgmlBlocks) and all(
        isinstance(w, (GgmlBlocks, Stacked)) for lw in weights.layers for w in (lw.qkv, lw.o, lw.gate_up, lw.down)
    )
    if blocks_only:
        # Five nodes a layer: the norms, SwiGLU and residual adds live inside BlockMatMul.
        eps = cfg.rms_eps
        act = "geglu" if cfg.gemma else "swiglu"

        def post_norm(y: str, weight: np.ndarray, name: str, residual: str) -> str:
            # Gemma 3: the block's output normalised before the residual add.
            normed = bld.node("SimplifiedLayerNormalization", [y, bld.init(name, weight)], axis=-1, epsilon=eps,
                              stash_type=1)
            return bld.node("Add", [normed, residual])

        for i, lw in enumerate(weights.layers):
            p = f"layers.{i}"
            qkv = bld.linear(x, lw.qkv, f"{p}.qkv", "rmsnorm", bld.init(f"{p}.attn_norm", lw.attn_norm), eps)
            attn = attention(i, qkv)
            if lw.post_norms is None:
                x_mid = bld.linear(attn, lw.o, f"{p}.o", residual=x)
            else:
                x_mid = post_norm(bld.linear(attn, lw.o, f"{p}.o"), lw.post_norms[0], f"{p}.post_attn_norm", x)
            gu = bld.linear(x_mid, lw.gate_up, f"{p}.gate_up", "rmsnorm", bld.init(f"{p}.ffn_norm", lw.ffn_norm), eps)
            if lw.post_norms is None:
                x = bld.linear(gu, lw.down, f"{p}.down", act, residual=x_mid)
            else:
                x = post_norm(bld.linear(gu, lw.down, f"{p}.down", act), lw.post_norms[1], f"{p}.post_ffw_norm", x_mid)
        logits = bld.linear(last_position(x), weights.lm_head, "lm_head", "rmsnorm",
                            bld.init("norm.weight", weights.out_norm), eps)
        bld.node("Identity", [logits], outputs=["logits"])
        return _model(bld, inputs, outputs)

    if cfg.gemma:
        raise ValueError("Gemma 3 is converted for the worker's own kernels only (--kernels morpheus), with every "
                         "weight in a GGML block format")
    h = bld.node("SimplifiedLayerNormalization", [x, bld.init("layers.0.attn_norm", weights.layers[0].attn_norm)],
                 axis=-1, epsilon=cfg.rms_eps, stash_type=1)
    for i, lw in enumerate(weights.layers):
        p = f"layers.{i}"
        qkv = bld.linear(h, lw.qkv, f"{p}.qkv")
        attn = attention(i, qkv)
        o = bld.linear(attn, lw.o, f"{p}.o")
        norm2 = bld.init(f"{p}.ffn_norm", lw.ffn_norm)
        h2, _, _, x_mid = bld.node(
            "SkipSimplifiedLayerNormalization", [o, x, norm2], domain=MS, n_out=4, epsilon=cfg.rms_eps
        )
        gu = bld.linear(h2, lw.gate_up, f"{p}.gate_up")
        if isinstance(lw.down, GgmlBlocks):
            # silu(gate) * up happens inside the down matmul, as it quantises its input.
            down = bld.linear(gu, lw.down, f"{p}.down", activation="swiglu")
        else:
            gate, up = bld.node("Split", [gu], n_out=2, axis=-1, num_outputs=2)
            act = bld.node("Mul", [bld.node("QuickGelu", [gate], domain=MS, alpha=1.0), up])
            down = bld.linear(act, lw.down, f"{p}.down")
        if i + 1 < L:
            nxt = bld.init(f"layers.{i + 1}.attn_norm", weights.layers[i + 1].attn_norm)
            h, _, _, x = bld.node(
                "SkipSimplifiedLayerNormalization", [down, x_mid, nxt], domain=MS, n_out=4, epsilon=cfg.rms_eps
            )
        else:
            x = bld.node("Add", [down, x_mid])

    hn = bld.node("SimplifiedLayerNormalization", [last_position(x), bld.init("norm.weight", weights.out_norm)],
                  axis=-1, epsilon=cfg.rms_eps, stash_type=1)
    logits = bld.linear(hn, weights.lm_head, "lm_head")
    bld.node("Identity", [logits], outputs=["logits"])
    return _model(bld, inputs, outputs)


def _model(bld: _Builder, inputs, outputs) -> onnx.ModelProto:
    graph = helper.make_graph(bld.nodes, "morpheus_llama_decoder", inputs, outputs, bld.inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)]
    if bld.uses_morpheus:
        opsets.append(helper.make_opsetid(MORPHEUS, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="morpheus-worker")
    model.ir_version = IR_VERSION
    return model
