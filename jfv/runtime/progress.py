"""The progress bar of long renders and passes: a tqdm bar with an ETA on stderr."""

from __future__ import annotations

import sys


class Progress:
    """A tqdm bar with an ETA on stderr, fed by the render engine's progress callback."""

    def __init__(self, description: str, enabled: bool = True):
        self.enabled = enabled
        self.description = description
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.description, unit="ch-step", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
