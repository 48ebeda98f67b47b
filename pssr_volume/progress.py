"""The progress bar long commands show on stderr (tqdm), told by the engine what is done."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm


class ProgressBar:
    """``start(total)`` once, then ``advance(n)``; ``close()`` at the end (safe to repeat)."""

    def __init__(self, enabled: bool, desc: str):
        self.enabled, self.desc = enabled, desc
        self.bar: Any = None

    def start(self, total: int) -> None:
        self.bar = tqdm(total=total, unit="task", desc=self.desc, disable=not self.enabled,
                        dynamic_ncols=True, smoothing=0.1)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
