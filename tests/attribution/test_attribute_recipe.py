"""End-to-end: the attribute recipe on the tiny config writes its outputs; bad keys fail clearly."""

from __future__ import annotations

import json
import os

import pytest

from configs import attribute_tiny
from jfv.recipes.attribution import attribute


@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-attr")


def test_attribute_tiny_writes_grid_gallery_manifest(tmp_path):
    c = attribute_tiny.get_config()
    c.methods = "saliency,deconvnet,occlusion"
    c.faithfulness_steps = 1
    manifest = attribute.run(c, str(tmp_path))
    for rel in ("grid.png", "index.html", "manifest.json", "overlays/grace_hopper_deconvnet.png"):
        assert (tmp_path / rel).exists(), rel
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["grid_layout"]["columns"] == ["input", "saliency", "deconvnet", "occlusion"]
    assert "deletion_auc" in manifest["images"][0]["methods"]["occlusion"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jfv-staging")]


@pytest.mark.parametrize("key,value,match", [
    ("methods", "saliency,lime", "unknown method"),
    ("methods", "cam", "needs a classifier head"),
    ("target", "pixel", "unknown target"),
    ("occlusion_window", 64, "larger than the 32 px image"),
])
def test_attribute_bad_config(tmp_path, key, value, match):
    c = attribute_tiny.get_config()
    c[key] = value
    c.methods = c.methods if key == "methods" else "occlusion"
    with pytest.raises(ValueError, match=match):
        attribute.run(c, str(tmp_path))
    assert not any(tmp_path.iterdir())
