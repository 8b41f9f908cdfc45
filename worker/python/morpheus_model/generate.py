"""Greedy generation with ONNX Runtime in Python, to check a prepared model end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort


class Decoder:
    """A prepared model directory opened with ONNX Runtime (CPU)."""

    def __init__(self, model_dir: Path, threads: int = 0) -> None:
        self.meta = json.loads((model_dir / "morpheus.json").read_text())
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(model_dir / self.meta["model_file"]), opts,
                                         providers=["CPUExecutionProvider"])
        self.layers = self.meta["num_layers"]
        self.kv = self.meta["num_kv_heads"]
        self.hd = self.meta["head_dim"]

    def _empty_past(self, batch: int, length: int) -> dict[str, np.ndarray]:
        z = np.zeros((batch, self.kv, length, self.hd), dtype=np.float32)
        return {f"past_key_values.{i}.{k}": z for i in range(self.layers) for k in ("key", "value")}

    def step(self, ids: list[int], past: dict[str, np.ndarray], past_len: int):
        """Run `ids` after `past_len` cached positions; returns (last logits, present)."""
        feeds = dict(past)
        feeds["input_ids"] = np.asarray([ids], dtype=np.int64)
        feeds["attention_mask"] = np.ones((1, past_len + len(ids)), dtype=np.int64)
        feeds["position_ids"] = np.arange(past_len, past_len + len(ids), dtype=np.int64)[None]
        feeds["last_index"] = np.asarray([len(ids) - 1], dtype=np.int64)
        names = [o.name for o in self.sess.get_outputs()]
        outs = self.sess.run(names, feeds)
        present = {n.replace("present.", "past_key_values."): v for n, v in zip(names[1:], outs[1:])}
        return outs[0][0, -1], present

    def greedy(self, prompt: list[int], max_new: int, stop: set[int]) -> list[int]:
        """Greedy continuation of `prompt` (optimum-style: past grows by one each step)."""
        logits, past = self.step(prompt, self._empty_past(1, 0), 0)
        out: list[int] = []
        n = len(prompt)
        for _ in range(max_new):
            tok = int(np.argmax(logits))
            if tok in stop:
                break
            out.append(tok)
            logits, past = self.step([tok], past, n)
            n += 1
        return out

    def prompt_logits_shared(self, prompt: list[int], max_len: int, extra: list[int]) -> list[np.ndarray]:
        """Logits of the prompt then each token of `extra`, with present bound onto a fixed past buffer."""
        bufs = {
            f"{i}.{k}": ort.OrtValue.ortvalue_from_numpy(np.zeros((1, self.kv, max_len, self.hd), np.float32))
            for i in range(self.layers)
            for k in ("key", "value")
        }
        results = []
        seq = list(prompt)
        feed_ids = list(prompt)
        for step in range(len(extra) + 1):
            b = self.sess.io_binding()
            total = len(seq)
            b.bind_cpu_input("input_ids", np.asarray([feed_ids], np.int64))
            b.bind_cpu_input("attention_mask", np.ones((1, total), np.int64))
            b.bind_cpu_input("position_ids", np.arange(total - len(feed_ids), total, dtype=np.int64)[None])
            b.bind_cpu_input("last_index", np.asarray([len(feed_ids) - 1], np.int64))
            b.bind_output("logits")
            for key, v in bufs.items():
                b.bind_ortvalue_input(f"past_key_values.{key}", v)
                b.bind_ortvalue_output(f"present.{key}", v)
            self.sess.run_with_iobinding(b)
            results.append(b.copy_outputs_to_cpu()[0][0, -1])
            if step < len(extra):
                feed_ids = [extra[step]]
                seq.append(extra[step])
        return results
