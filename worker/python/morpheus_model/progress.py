"""Progress bars for the long steps (tqdm on a terminal, quiet lines otherwise)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable, desc: str, total: int | None = None):
    """Wrap `iterable` in a progress bar on stderr."""
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, unit="step", dynamic_ncols=True,
                disable=None if sys.stderr.isatty() else False, mininterval=0.5)
