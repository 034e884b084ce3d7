"""jfv.weights, the old ``python -m jfv.weights`` command: it still builds, with a one-line note, the
same checkpoint ``python -m jfv.models build`` builds, which ``verify`` finds intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from jfv.models import cli
from jfv.models.weights import restore

REPO = Path(__file__).resolve().parents[2]


def test_the_old_command_builds_the_same_checkpoint_with_a_note(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    res = subprocess.run([sys.executable, "-m", "jfv.weights", "--model=alexnet", f"--weights_dir={old}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout == f"alexnet: {old / 'alexnet'}\n"
    assert res.stderr.strip().splitlines() == [
        "note: python -m jfv.weights is deprecated: use python -m jfv.models build --model=alexnet"]
    res = subprocess.run([sys.executable, "-m", "jfv.models", "verify", "--model=alexnet", f"--weights_dir={old}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "is intact (13 layers)" in res.stdout, res.stderr
    assert cli.main(["build", "--model=alexnet", f"--weights_dir={new}"]) == 0
    a, _ = restore(old / "alexnet", "rebuild", model="alexnet")
    b, _ = restore(new / "alexnet", "rebuild", model="alexnet")
    assert jax.tree.structure(a) == jax.tree.structure(b) and len(jax.tree.leaves(a)) == 10  # 5 convs: kernel, bias
    jax.tree.map(np.testing.assert_array_equal, a, b)
