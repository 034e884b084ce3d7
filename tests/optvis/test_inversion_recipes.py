"""End-to-end: the invert recipe (also registered as accentuate) on its tiny configs; bad input is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import accentuate_tiny, invert_tiny
from jfv import recipes
from jfv.recipes.optvis import invert

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-invert")


def test_invert_tiny_writes_grid_gallery_manifest(tmp_path, shared):
    c = invert_tiny.get_config()
    c.shared_dir = str(shared)
    manifest = invert.run(c, str(tmp_path))
    for rel in ("grid.png", "index.html", "manifest.json", "images/owl.png", "images/owl_conv1_2.png",
                "images/owl_conv2_1.png"):
        assert (tmp_path / rel).exists(), rel
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (32, 3 * 32 + 2 * 2, 3)  # one row: photo, conv1_2, conv2_1
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["grid_layout"]["columns"] == ["photo", "conv1_2", "conv2_1"]
    stats = manifest["images"][0]["layers"]["conv1_2"]
    assert 0 < stats["relative_error"] < 1.5 and -1 <= stats["cosine"] <= 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jfv-staging")]


def test_caricature_mode_runs_from_the_same_config(tmp_path, shared):
    c = invert_tiny.get_config()
    c.shared_dir = str(shared)
    c.mode = "caricature"
    c.layers = "conv1_2"
    c.cossim_pow = 1.0
    c.transforms = "standard"
    manifest = invert.run(c, str(tmp_path))
    assert manifest["transforms"].startswith("compose(Pad(")
    assert manifest["objective"].startswith("caricature(<layer>, p=1)")
    assert manifest["images"][0]["layers"]["conv1_2"]["dot_ratio"] > 0


def test_invert_with_a_cppn(tmp_path, shared):
    c = invert_tiny.get_config()
    c.shared_dir = str(shared)
    c.param = "cppn"
    c.layers = "conv1_2"
    manifest = invert.run(c, str(tmp_path))
    assert manifest["param"].startswith("CPPNParam(size=32")
    img = np.asarray(Image.open(tmp_path / "images/owl_conv1_2.png"))
    assert img.shape == (32, 32, 3) and img.std() > 0  # the CPPN moved from its flat start


def test_accentuate_tiny_writes_grid_and_stays_in_the_ball(tmp_path, shared):
    c = accentuate_tiny.get_config()
    c.shared_dir = str(shared)
    manifest = invert.run(c, str(tmp_path))  # recipe="accentuate" asks for accentuation
    for rel in ("grid.png", "index.html", "manifest.json", "images/parrot.png", "images/parrot_conv2_1_0003.png",
                "images/parrot_conv2_1_0005.png"):
        assert (tmp_path / rel).exists(), rel
    cells = manifest["images"][0]["channels"]
    assert [cell["channel"] for cell in cells] == [3, 5]
    for cell in cells:
        assert cell["pixel_linf"] <= c.eps + 1e-3  # + the PNG-free float round trip (uint8 is not read back)
        assert cell["activation"] > cell["activation_seed"]
    # the PNG of the seed is the photo the network saw
    seed = np.asarray(Image.open(tmp_path / "images/parrot.png"), np.float32) / 255
    assert seed.shape == (32, 32, 3)


def test_one_module_serves_both_recipe_names_and_the_config_selects_the_task():
    assert recipes.get("accentuate") is recipes.get("invert") is invert
    assert recipes.recipe("accentuate") is recipes.recipe("invert") is invert.RECIPE
    assert invert.task(accentuate_tiny.get_config()) == "accentuation"
    c = invert_tiny.get_config()
    assert invert.task(c) == "inversion"
    c.mode = "caricature"
    assert invert.task(c) == "caricature"


def test_the_old_accentuate_module_path_is_the_invert_recipe():
    """(tests/test_api.py checks that it warns once, naming jfv.recipes.optvis.invert.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from jfv.recipes.optvis import accentuate
    assert accentuate.run is invert.run and accentuate.check is invert.check and accentuate.RECIPE is invert.RECIPE


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "jfv", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


def assert_one_line(res: subprocess.CompletedProcess, fragment: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("jfv: ")]
    assert len(lines) == 1 and fragment in lines[0], res.stderr[-3000:]


@pytest.mark.parametrize("config,extra,fragment", [
    ("configs/accentuate_tiny.py", ("--config.images={bad}",), "is not an image jfv can read"),
    ("configs/accentuate_tiny.py", ("--config.reg_layer=conv9_9",), "conv9_9"),
    ("configs/invert_tiny.py", ("--config.layers=conv1_2,fc99",), "fc99"),
    ("configs/invert_tiny.py", ("--config.mode=dream",), "unknown mode 'dream'"),
    ("configs/invert_tiny.py", ("--config.param=maco9",), "unknown param 'maco9'"),
    ("configs/accentuate_tiny.py", ("--config.transforms=lucid",), "unknown transforms 'lucid'"),
    ("configs/accentuate_tiny.py", ("--config.norm=linf", "--config.eps=0.0"), "needs eps > 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, shared, config, extra, fragment):
    bad = tmp_path / "seed.png"
    bad.write_text("not a picture")
    workdir = tmp_path / "out"
    res = cli(f"--config={config}", f"--workdir={workdir}", f"--config.shared_dir={shared}",
              *(e.format(bad=bad) for e in extra))
    assert_one_line(res, fragment)
    assert not workdir.exists() or not any(workdir.iterdir())


def test_missing_default_photo_names_the_path_and_the_fix(tmp_path):
    empty = tmp_path / "shared"
    empty.mkdir()
    c = invert_tiny.get_config()
    c.shared_dir = str(empty)
    with pytest.raises(ValueError, match=r"missing from the shared folder: pass --config.images"):
        invert.run(c, str(tmp_path / "out"))
