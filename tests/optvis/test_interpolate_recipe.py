"""End-to-end: the interpolate recipe on its tiny config; its manifest's numbers agree with the
objective; bad input is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import interpolate_tiny
from jfv.recipes.optvis import interpolate

REPO = Path(__file__).resolve().parents[2]


def interpolation_sum(entry: dict) -> float:
    """``sum_i (1 - t_i) a_i + t_i b_i`` from the manifest's per-frame channel means."""
    a, b = np.asarray(entry["activation_a"]), np.asarray(entry["activation_b"])
    t = np.arange(len(a)) / (len(a) - 1)
    return float(np.sum((1 - t) * a + t * b))


def test_interpolate_tiny_writes_strips_sprite_gallery_manifest(tmp_path):
    manifest = interpolate.run(interpolate_tiny.get_config(), str(tmp_path))
    for rel in ("strips/conv3_1_0003_0005.png", "strips/conv3_1_0007_0001.png", "sprite.png", "index.html"):
        assert (tmp_path / rel).exists(), rel
    strip = np.asarray(Image.open(tmp_path / "strips/conv3_1_0003_0005.png"))
    assert strip.shape == (32, 3 * 32 + 2 * 2, 3)  # 3 frames, 2 px white between
    assert (strip[:, 32:34] == 255).all()
    assert np.asarray(Image.open(tmp_path / "sprite.png")).shape == (2 * 32 + 2, 3 * 32 + 4, 3)
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["pairs"] == manifest["pairs"] and [e["pair"] for e in saved["pairs"]] == [[3, 5], [7, 1]]
    assert saved["objective"].startswith("channel_interpolate(conv3_1, a -> conv3_1, b) - (0.1 * (alignment(conv2_1")
    for e in saved["pairs"]:
        assert len(e["activation_a"]) == len(e["activation_b"]) == 3
        assert e["objective"] < interpolation_sum(e)  # the alignment penalty is positive and subtracted
    assert "conv3_1 3 -&gt; 5" in (tmp_path / "index.html").read_text()


def test_without_alignment_the_objective_is_the_interpolation_of_the_recorded_activations(tmp_path):
    c = interpolate_tiny.get_config()
    c.alignment, c.shared, c.pairs = 0.0, False, "3-5"
    manifest = interpolate.run(c, str(tmp_path))
    (entry,) = manifest["pairs"]
    assert entry["objective"] == pytest.approx(interpolation_sum(entry), rel=1e-4, abs=1e-4)
    assert manifest["objective"] == "channel_interpolate(conv3_1, a -> conv3_1, b)"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jfv", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


@pytest.mark.parametrize("extra,fragment", [
    (("--config.pairs=3-5-7",), "cannot read pairs '3-5-7'"),
    (("--config.pairs=3-999",), "channel(s) 999 of pairs are out of range"),
    (("--config.frames=1",), "frames must be an integer >= 2"),
    (("--config.alignment_layers=conv9_9",), "conv9_9"),
    (("--config.transforms=maco",), "unknown transforms 'maco' for interpolate"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, extra, fragment):
    workdir = tmp_path / "out"
    res = cli("--config=configs/interpolate_tiny.py", f"--workdir={workdir}", *extra)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert len(lines) == 1 and fragment in lines[0], res.stderr[-3000:]
    assert not workdir.exists() or not any(workdir.iterdir())
