"""A tiny random Llama GGUF (fixed seed) in the same format as a real one, for tests.

It goes through the very same conversion as SmolLM2: Q4_1 weights in GGML's Q/K order, a byte-level
BPE vocabulary with ChatML special tokens and a chat template. `formats="mixed"` writes the same model
with every block format the worker's kernels take, mixed as a K-quant file mixes them (Q4_K Q and K
beside a Q6_K V), so the conversion and every kernel are checked against the numpy reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, quants

from . import kquants

Q = GGMLQuantizationType

# Tensor -> format per layer for `formats="mixed"` (the output head: Q6_K): all eight formats, a
# fused Q|K|V of two formats (layer 0) and of one (layer 1).
MIXED = [
    {"attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q5_0,
     "ffn_gate": Q.Q5_K, "ffn_up": Q.Q4_0, "ffn_down": Q.Q6_K},
    {"attn_q": Q.Q5_1, "attn_k": Q.Q5_1, "attn_v": Q.Q5_1, "attn_output": Q.Q4_1,
     "ffn_gate": Q.Q8_0, "ffn_up": Q.Q8_0, "ffn_down": Q.Q5_K},
]
FORMATS = ("q4_1", "mixed")
# `arch`: the GGUF architecture and what it adds (drawn from a second generator, so the llama model's
# bytes stay the same): llama3 Llama 3.1's RoPE frequency factors, qwen2 Q/K/V biases, qwen3 Q/K norms,
# gemma3: six layers (five local, one global), a 16-position window, GELU, post-norms, Q/K norms, and
# its embeddings in Q8_0 with the output head tied to them.
ARCHS = ("llama", "llama3", "qwen2", "qwen3", "gemma3")


def quantize(w: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """GGML bytes of a float32 [n, k] weight in `qtype`."""
    encoders = {Q.Q4_K: kquants.quantize_q4_k, Q.Q5_K: kquants.quantize_q5_k, Q.Q6_K: kquants.quantize_q6_k}
    if qtype in encoders:
        return encoders[qtype](w)
    return quants.quantize(w.astype(np.float32), qtype).reshape(w.shape[0], -1)

# No end-of-sequence token: random weights would emit one at an arbitrary step, and tests need
# answers of a known length (the SmolLM2 test covers stopping at end of sequence).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_sep|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|pad|>", "<|im_start|>", "<|im_sep|>"]
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("Ġ", "a"), ("o", "n"), ("r", "e")]


def _bytes_to_unicode() -> list[str]:
    """GPT-2's printable stand-in for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def write(path: Path, seed: int = 7, formats: str = "q4_1", arch: str = "llama") -> None:
    """Write the tiny GGUF to `path`, its weights in Q4_1 or `formats="mixed"` (see `MIXED`), of
    architecture `arch` (see `ARCHS`)."""
    if formats not in FORMATS:
        raise ValueError(f"unknown tiny model formats {formats!r} (one of {', '.join(FORMATS)})")
    if arch not in ARCHS:
        raise ValueError(f"unknown tiny model architecture {arch!r} (one of {', '.join(ARCHS)})")
    rng = np.random.default_rng(seed)
    # Wide enough that the GGUF spans three 1 MiB chunks with a short last piece: the weights file
    # is what liveness proofs read, and the tests prove every chunk of it.
    layers, hidden, inter, heads, kv_heads = 2, 256, 2048, 4, 2
    if arch == "gemma3":
        layers, inter = 6, 512
    hd = hidden // heads
    tokens = SPECIALS + _bytes_to_unicode() + [a + b for a, b in MERGES]
    types = [3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS))
    vocab = len(tokens)

    w = GGUFWriter(str(path), "llama" if arch.startswith("llama") else arch)
    w.add_name("tiny-llama-test")
    w.add_block_count(layers)
    w.add_context_length(32768)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0 if arch != "gemma3" else 1_000_000.0)
    if arch == "gemma3":
        w.add_key_length(hd)
        w.add_value_length(hd)
        w.add_sliding_window(16)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre({"llama": "smollm", "llama3": "llama-bpe"}.get(arch, "qwen2"))
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{a} {b}" for a, b in MERGES])
    w.add_bos_token_id(1)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    def add_q4(name: str, n: int, k: int, scale: float) -> None:
        # `scale` is for a fan-in of 64; wider inputs get smaller weights, so activations keep
        # the magnitudes of a narrow model.
        scale *= (64 / k) ** 0.5
        values = (rng.standard_normal((n, k)) * scale).astype(np.float32)
        qtype = Q.Q4_1
        if formats == "mixed":
            layer, _, tensor = name.removeprefix("blk.").partition(".")
            qtype = Q.Q6_K if name == "output.weight" else MIXED[int(layer)][tensor.removesuffix(".weight")]
        w.add_tensor(name, quantize(values, qtype), raw_dtype=qtype)

    # The embeddings as Gemma's GGUFs hold them (Q8_0, the output head tied to them), and in a
    # format the worker unpacks in the mixed model: either way it reads their rows from the blocks.
    embd = rng.standard_normal((vocab, hidden)).astype(np.float32)
    tied = arch == "gemma3"
    embd_type = Q.Q8_0 if tied else Q.Q5_K if formats == "mixed" else None
    if embd_type is None:
        w.add_tensor("token_embd.weight", embd)
    else:
        w.add_tensor("token_embd.weight", quantize(embd, embd_type), raw_dtype=embd_type)
    w.add_tensor("output_norm.weight", (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
    if not tied:
        add_q4("output.weight", vocab, hidden, 0.3)
    for i in range(layers):
        p = f"blk.{i}"
        w.add_tensor(f"{p}.attn_norm.weight", (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
        w.add_tensor(f"{p}.ffn_norm.weight", (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
        add_q4(f"{p}.attn_q.weight", heads * hd, hidden, 0.3)
        add_q4(f"{p}.attn_k.weight", kv_heads * hd, hidden, 0.3)
        add_q4(f"{p}.attn_v.weight", kv_heads * hd, hidden, 0.3)
        add_q4(f"{p}.attn_output.weight", hidden, heads * hd, 0.1)
        add_q4(f"{p}.ffn_gate.weight", inter, hidden, 0.2)
        add_q4(f"{p}.ffn_up.weight", inter, hidden, 0.2)
        add_q4(f"{p}.ffn_down.weight", hidden, inter, 0.1)
    extra = np.random.default_rng(seed + 1)
    if arch == "llama3":
        # Low frequencies slowed down, as Llama 3.1's scaling does (factor 1 .. 8 over the pairs).
        w.add_tensor("rope_freqs.weight", np.linspace(1.0, 8.0, hd // 2).astype(np.float32))
    for i in range(layers):
        p = f"blk.{i}"
        if arch == "qwen2":
            for name, rows in (("attn_q", heads * hd), ("attn_k", kv_heads * hd), ("attn_v", kv_heads * hd)):
                w.add_tensor(f"{p}.{name}.bias", (0.5 * extra.standard_normal(rows)).astype(np.float32))
        if arch == "gemma3":
            for name in ("post_attention_norm", "post_ffw_norm"):
                w.add_tensor(f"{p}.{name}.weight", (1.0 + 0.3 * extra.standard_normal(hidden)).astype(np.float32))
        if arch in ("qwen3", "gemma3"):
            for name in ("attn_q_norm", "attn_k_norm"):
                w.add_tensor(f"{p}.{name}.weight", (1.0 + 0.3 * extra.standard_normal(hd)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
