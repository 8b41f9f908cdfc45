"""Command line: `python -m morpheus_model {prepare,tiny,locate,token-bytes,verify} ...`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import prepare, sources, tiny


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="morpheus_model", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("prepare", help="convert a GGUF (a path, or a known source name) into a model directory")
    p.add_argument("source", help="path to a .gguf file, or a known name: " + ", ".join(sources.KNOWN))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--max-positions", type=int, default=2048)
    p.add_argument("--accuracy-level", type=int, default=4, choices=[0, 1, 2, 3, 4])
    p.add_argument("--q4-1", default="auto", choices=["auto", "int8", "exact"],
                   help="Q4_1 weights: 8-bit kernels with the minimums folded in (int8), or 4-bit kernels "
                        "plus a per-block-minimum matmul (exact); auto: int8 at accuracy level 4")
    p.add_argument("--kernels", default="morpheus", choices=list(prepare.KERNELS),
                   help="morpheus: Q4_1/Q8_0 weights stay GGUF blocks for the worker's own CPU operator "
                        "(default, fastest); onnxruntime: only ONNX Runtime operators (any runtime, CUDA)")
    p.add_argument("--force", action="store_true")

    t = sub.add_parser("tiny", help="write the tiny fixed-seed test model directory")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--seed", type=int, default=7)
    t.add_argument("--formats", default="q4_1", choices=list(tiny.FORMATS),
                   help="q4_1: every weight Q4_1; mixed: every GGML block format the worker's kernels take")
    t.add_argument("--arch", default="llama", choices=list(tiny.ARCHS),
                   help="llama; llama3 (RoPE frequency factors); qwen2 (Q/K/V biases); qwen3 (Q/K norms); "
                        "gemma3 (sliding windows, GELU, post-norms)")
    t.add_argument("--kernels", default="morpheus", choices=list(prepare.KERNELS))
    t.add_argument("--force", action="store_true")

    loc = sub.add_parser("locate", help="print the GGUF path of a known source")
    loc.add_argument("source")

    tb = sub.add_parser("token-bytes", help="print the bytes of weights a decoded token reads from a GGUF")
    tb.add_argument("gguf", type=Path)

    v = sub.add_parser("verify", help="compare a prepared model with a numpy reference, then generate")
    v.add_argument("model", type=Path)
    v.add_argument("--gguf", required=True)
    v.add_argument("--prompt", default="What is the capital of France?")
    v.add_argument("--system", default=None, help="a system message before the prompt")
    v.add_argument("--expect", default=None, help="fail unless the greedy answer contains this")
    v.add_argument("--max-new", type=int, default=40)
    v.add_argument("--worker", type=Path, default=None,
                   help="check through this morpheus-worker binary (`model logits`) instead of Python's ONNX "
                        "Runtime; models on the worker's own kernels always are (default: MORPHEUS_WORKER, "
                        "else target/release/morpheus-worker)")
    v.add_argument("--activations", choices=["int8x2", "int8"], default=None,
                   help="the worker's activation mode (its default when omitted)")

    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        path = sources.resolve(args.source)
        name = args.name or sources.default_name(args.source)
        prepare.prepare(path, args.out, name, args.max_positions, args.accuracy_level, args.force, args.q4_1,
                        args.kernels)
    elif args.cmd == "tiny":
        with tempfile.TemporaryDirectory() as d:
            gguf = Path(d) / "tiny-llama-test.gguf"
            tiny.write(gguf, args.seed, args.formats, args.arch)
            # `prepare` keeps the GGUF beside the build (`weights.gguf`), as for any source.
            name = "tiny-llama-test" if args.arch == "llama" else f"tiny-{args.arch}-test"
            if args.formats != "q4_1":
                name += f"-{args.formats}"
            prepare.prepare(gguf, args.out, name, max_positions=32768, force=args.force, kernels=args.kernels)
    elif args.cmd == "locate":
        print(sources.resolve(args.source))
    elif args.cmd == "token-bytes":
        from .gguf_file import GgufFile, token_bytes

        print(token_bytes(GgufFile(args.gguf)))
    elif args.cmd == "verify":
        from . import verify

        ok = verify.run(args.model, sources.resolve(args.gguf), args.prompt, args.expect, args.max_new,
                        args.worker, args.activations, args.system)
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as e:
        # A GGUF the worker cannot serve (architecture, tensor type, shape): one line naming it.
        print(f"[morpheus_model] error: {e}", file=sys.stderr)
        sys.exit(2)
