"""``param=maco`` in the whole-layer job: the _alpha.png overlays, exact resumption (the transparency
map is part of the checkpointed state), and ``param`` in the resume fingerprint."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from killable import run_jfv

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/layer_maco_tiny.py"  # 4 channels in 2 groups of 2, 4 steps, a checkpoint every step


def cli(workdir, *extra, config=CONFIG, kill=None):
    args = [f"--config={config}", f"--workdir={workdir}", *extra]
    return run_jfv(args, kill)


def pngs(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / "channels").glob("*.png"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("maco_reference")
    res = cli(workdir)
    assert res.returncode == 0, res.stderr[-2000:]
    return workdir


def test_maco_layer_job_writes_images_and_alpha_overlays(reference):
    names = sorted(pngs(reference))
    expect = [f"conv3_1_{c:04d}{suffix}.png" for c in range(4) for suffix in ("", "_alpha")]
    assert names == sorted(expect)
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["complete"] and manifest["settings"]["param"] == "maco"
    for e in manifest["channels"]:
        assert e["alpha"] == f"channels/conv3_1_{e['channel']:04d}_alpha.png"
        rgba = np.asarray(Image.open(reference / e["alpha"]))
        rgb = np.asarray(Image.open(reference / e["image"]))
        assert rgba.shape == (32, 32, 4) and np.array_equal(rgba[..., :3], rgb)  # the image, with alpha
        assert rgba[..., 3].max() == 255 and rgba[..., 3].min() < 255  # the map is not flat
    assert 'alpha</a>' in (reference / "index.html").read_text()


# killed mid-group, where the transparency map must come back from the state checkpoint (the other
# kill points are the same for every param and are covered by tests/optvis/test_layer_job.py)
@pytest.mark.parametrize("kill", [("save_state", 2)], ids=["mid-group-0"])
def test_maco_sigkill_then_resume_is_byte_equal(tmp_path, reference, kill):
    res = cli(tmp_path, kill=(*kill, "SIGKILL"))
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert len(pngs(tmp_path)) < 8
    res = cli(tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert pngs(tmp_path) == pngs(reference)  # images and overlays, byte for byte
    got = json.loads((tmp_path / "manifest.json").read_text())["channels"]
    assert got == json.loads((reference / "manifest.json").read_text())["channels"]


def test_a_resume_with_another_param_is_refused_naming_the_key(reference, tmp_path):
    res = cli(reference, "--config.param=lucid")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "param ('maco' -> '<absent>')" in res.stderr and "--config.resume=False" in res.stderr, res.stderr
    lucid = tmp_path / "lucid"
    res = cli(lucid, "--config.channels=0:2", config="configs/layer_tiny.py")
    assert res.returncode == 0, res.stderr[-2000:]
    assert not list((lucid / "channels").glob("*_alpha.png"))
    settings = json.loads((lucid / "job.json").read_text())["settings"]
    assert "param" not in settings and "maco_crops" not in settings  # a pre-MACO job.json still resumes
    res = cli(lucid, "--config.channels=0:2", "--config.param=maco", config="configs/layer_tiny.py")
    assert res.returncode == 2 and "param ('<absent>' -> 'maco')" in res.stderr, res.stderr[-2000:]


def test_bad_maco_layer_input(tmp_path):
    res = cli(tmp_path / "a", "--config.param=pixels")
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("jfv: error: unknown param 'pixels'")
    bad = tmp_path / "m.npy"
    np.save(bad, np.ones((3, 5, 5), np.float32))
    res = cli(tmp_path / "b", f"--config.maco_magnitude={bad}")
    assert res.returncode == 2 and "maco_magnitude" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_a_maco_job_from_before_the_per_size_magnitude_is_refused_not_mixed(reference, tmp_path):
    """Below 256 px the shipped magnitude is now taken to the size as photos have it: a job.json
    written before (without that setting) is refused naming it, so no workdir mixes the two."""
    import shutil

    settings = json.loads((reference / "job.json").read_text())["settings"]
    assert settings["maco_magnitude_resample"] == "photo"
    old = tmp_path / "old"
    shutil.copytree(reference, old)
    job = json.loads((old / "job.json").read_text())
    del job["settings"]["maco_magnitude_resample"]
    (old / "job.json").write_text(json.dumps(job))
    res = cli(old)
    assert res.returncode == 2 and "maco_magnitude_resample ('<absent>' -> 'photo')" in res.stderr, res.stderr[-2000:]
