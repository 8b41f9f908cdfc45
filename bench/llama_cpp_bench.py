"""llama.cpp (llama-cpp-python) side of `make bench`: the same measurements as `morpheus-worker bench`.

Reads the prompt token ids (so both engines see the very same prompt), then measures
  * prompt tokens/s: one prompt in one llama_decode call,
  * decode tokens/s and time to first token with 1, 4, 16 ... concurrent streams: every stream's
    prompt is run, then one batched llama_decode per step yields a token for every stream
    (greedy, end-of-sequence ignored, exactly --gen tokens each).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time

import llama_cpp as L
import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--prompt-ids", required=True, help="JSON file: list of token ids")
    ap.add_argument("--stream-prompt-tokens", type=int, default=32)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--streams", default="1,4,16")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    prompt = json.load(open(args.prompt_ids))
    streams = [int(s) for s in args.streams.split(",")]
    max_streams = max(streams)

    L.llama_backend_init()
    mparams = L.llama_model_default_params()
    model = L.llama_model_load_from_file(args.gguf.encode(), mparams)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    cparams = L.llama_context_default_params()
    cparams.n_ctx = max(2048, max_streams * (args.stream_prompt_tokens + args.gen + 8), len(prompt) + 8)
    cparams.n_batch = max(len(prompt), max_streams, 512)
    cparams.n_ubatch = cparams.n_batch
    cparams.n_seq_max = max_streams
    cparams.n_threads = args.threads
    cparams.n_threads_batch = args.threads
    cparams.no_perf = True
    ctx = L.llama_init_from_model(model, cparams)
    mem = L.llama_get_memory(ctx)
    batch = L.llama_batch_init(cparams.n_batch, 0, max_streams)

    def fill(tokens, positions, seqs, want_logits):
        batch.n_tokens = len(tokens)
        for i, (t, p, s, lg) in enumerate(zip(tokens, positions, seqs, want_logits)):
            batch.token[i] = t
            batch.pos[i] = p
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = s
            batch.logits[i] = 1 if lg else 0

    def decode():
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            raise SystemExit(f"llama_decode failed: {rc}")

    def argmax(i):
        ptr = L.llama_get_logits_ith(ctx, i)
        return int(np.argmax(np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))))

    # Warm-up.
    L.llama_memory_clear(mem, True)
    fill(prompt[:16], range(16), [0] * 16, [False] * 15 + [True])
    decode()

    best_pp = 0.0
    for _ in range(args.repeats):
        L.llama_memory_clear(mem, True)
        n = len(prompt)
        fill(prompt, range(n), [0] * n, [False] * (n - 1) + [True])
        t = time.perf_counter()
        decode()
        best_pp = max(best_pp, n / (time.perf_counter() - t))

    short = prompt[: args.stream_prompt_tokens]
    results = {}
    def run_streams(s):
        L.llama_memory_clear(mem, True)
        start = time.perf_counter()
        ttfts, last = [], []
        for seq in range(s):
            n = len(short)
            fill(short, range(n), [seq] * n, [False] * (n - 1) + [True])
            decode()
            last.append(argmax(n - 1))
            ttfts.append(time.perf_counter() - start)
        t0 = time.perf_counter()
        pos = len(short)
        for _ in range(args.gen - 1):
            fill(last, [pos] * s, list(range(s)), [True] * s)
            decode()
            last = [argmax(i) for i in range(s)]
            pos += 1
        dt = time.perf_counter() - t0
        return s * (args.gen - 1) / dt, 1000 * sum(ttfts) / len(ttfts), 1000 * ttfts[0]

    for s in streams:
        # Best of a few rounds, as on the morpheus side.
        rounds = [run_streams(s) for _ in range(args.repeats)]
        results[str(s)] = {
            "decode_tps": max(r[0] for r in rounds),
            "ttft_ms_mean": min(r[1] for r in rounds),
            "ttft_ms_first": min(r[2] for r in rounds),
        }
    L.llama_batch_free(batch)
    # The instruction sets its CPU backend was built with and found ("AVX2 = 1", ...).
    info = L.llama_print_system_info().decode()
    features = [part.split("=")[0].strip() for part in info.replace("CPU :", "|").split("|")
                if part.strip().endswith("= 1")]
    json.dump({"engine": "llama.cpp (llama-cpp-python %s)" % L.__version__, "threads": args.threads,
               "cpu_features": " ".join(features),
               "prompt_tokens": len(prompt), "prompt_tps": best_pp, "streams": results}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
