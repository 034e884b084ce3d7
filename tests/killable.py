"""Runs ``python -m jfv`` in a subprocess, optionally one that signals itself mid-job.

``kill=(method, n, signal)`` wraps ``jfv.runtime.jobs.Job.<method>`` so that its n-th call returns and then
sends ``signal`` to the process (e.g. ``("save_state", 2, "SIGKILL")``): the resume tests of the
whole-layer, MACO layer and top-patches jobs interrupt a run at a known point this way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    from jfv.runtime import jobs
    what, n, sig = os.environ["KILL_WHERE"], int(os.environ["KILL_AT"]), getattr(signal, os.environ["KILL_SIGNAL"])
    original, calls = getattr(jobs.Job, what), [0]
    def patched(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), sig)
        return out
    setattr(jobs.Job, what, patched)
    from jfv.main import run
    sys.argv = ["jfv"] + sys.argv[1:]
    run()
    """
)


def run_jfv(args: Sequence[str], kill: tuple[str, int, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m jfv *args`` from the repository root (or the self-signalling driver when ``kill``)."""
    env = dict(os.environ)
    if kill is None:
        cmd = [sys.executable, "-m", "jfv", *args]
    else:
        env.update(KILL_WHERE=kill[0], KILL_AT=str(kill[1]), KILL_SIGNAL=kill[2])
        cmd = [sys.executable, "-c", DRIVER, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
