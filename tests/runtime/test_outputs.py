"""jfv.runtime.outputs: PNG bytes, sprite layout, the gallery page, staging (all or nothing) and the one
writer every recipe ends with (``write_run``), on a Staging and on a resumable Job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jfv.runtime import outputs
from jfv.runtime.jobs import Job


def test_to_uint8_rounds_to_nearest_and_clips():
    x = np.array([[[-0.1, 0.0, 0.5 / 255], [0.5, 1.0, 1.7]]], np.float32)
    np.testing.assert_array_equal(outputs.to_uint8(x), [[[0, 0, 0], [128, 255, 255]]])  # rint(127.5) = 128
    assert outputs.to_uint8(np.full((2, 3, 1), 0.2)).shape == (2, 3)  # grayscale drops its axis


def test_png_round_trip_is_exact(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.float32) / 255
    outputs.save_png(img, tmp_path / "a.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), outputs.to_uint8(img))


def test_sprite_places_tiles_row_major_with_padding():
    tiles = [np.full((2, 3, 1), v, np.float32) for v in (0.1, 0.2, 0.3)]
    sheet = outputs.sprite(tiles, columns=2, pad=1, background=1.0)
    assert sheet.shape == (2 * 3 - 1, 2 * 4 - 1, 1)
    np.testing.assert_allclose(sheet[0:2, 0:3], 0.1)
    np.testing.assert_allclose(sheet[0:2, 4:7], 0.2)
    np.testing.assert_allclose(sheet[3:5, 0:3], 0.3)
    np.testing.assert_allclose(sheet[3:5, 4:7], 1.0)  # the empty slot is background
    np.testing.assert_allclose(sheet[2], 1.0)  # the padding row
    mixed = outputs.sprite([np.zeros((2, 2, 1)), np.ones((2, 2, 3))], pad=0)
    assert mixed.shape == (2, 4, 3) and (mixed[:, :2] == 0).all()  # grey beside colour


def test_gallery_escapes_captions_and_lists_every_card():
    page = outputs.gallery_html("a <b> title", [{"image": "x.png", "caption": ["<i>1</i>", "two"]},
                                                 {"image": "y.png", "caption": ["y"]}], {"k&": "v"})
    assert "<title>a &lt;b&gt; title</title>" in page and "&lt;i&gt;1&lt;/i&gt;<br>two" in page
    assert page.count("<figure>") == 2 and '<th>k&amp;</th><td>v</td>' in page


def test_staging_commits_everything_or_nothing(tmp_path):
    with outputs.Staging(tmp_path / "ok") as stage:
        stage.write_text("a/b.txt", "hi")
        stage.write_json("manifest.json", {"x": 1})
    assert (tmp_path / "ok" / "a" / "b.txt").read_text() == "hi"
    assert [p.name for p in (tmp_path / "ok").iterdir() if p.name.startswith(".jfv-staging")] == []
    with pytest.raises(RuntimeError):
        with outputs.Staging(tmp_path / "bad") as stage:
            stage.write_text("a.txt", "half")
            raise RuntimeError("the run failed")
    assert list((tmp_path / "bad").iterdir()) == []


def _tiles():
    return [np.full((4, 4, 3), v, np.float32) for v in (0.0, 0.25, 0.5, 0.75, 1.0)]


def test_write_run_writes_sheet_page_and_manifest_last(tmp_path):
    tiles = _tiles()
    manifest = {"recipe": "demo", "settings": {"a": 1}}
    order = []

    class Recording(outputs.Staging):
        def write_text(self, relative, text):
            order.append(relative)
            super().write_text(relative, text)

        def write_json(self, relative, obj):
            order.append(relative)
            super().write_json(relative, obj)

        def save_png(self, relative, image):
            order.append(relative)
            super().save_png(relative, image)

    cards = [{"image": "grid.png", "caption": ["all five"]}]
    with Recording(tmp_path) as stage:
        out = outputs.write_run(stage, manifest, "Demo run", cards, {"tiles": 5}, grid=tiles, grid_columns=2)
    assert order == ["grid.png", "index.html", "manifest.json"]
    assert out is manifest and list(manifest) == ["recipe", "settings", "gallery"] and manifest["gallery"] == "index.html"
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert (tmp_path / "index.html").read_text() == outputs.gallery_html("Demo run", cards, {"tiles": 5})
    sheet = np.asarray(Image.open(tmp_path / "grid.png"))
    np.testing.assert_array_equal(sheet, outputs.to_uint8(outputs.sprite(tiles, columns=2)))
    assert sheet.shape == (3 * 6 - 2, 2 * 6 - 2, 3)


def test_write_run_keeps_a_given_gallery_and_writes_no_sheet_without_tiles(tmp_path):
    manifest = {"recipe": "demo", "gallery": "index.html", "x": 2}
    with outputs.Staging(tmp_path) as stage:
        outputs.write_run(stage, manifest, "t", grid=[])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "manifest.json"]
    assert list(json.loads((tmp_path / "manifest.json").read_text())) == ["recipe", "gallery", "x"]


def test_write_run_on_a_job_writes_the_recipes_own_page(tmp_path):
    job = Job(tmp_path / "w", "demo", {"a": 1})
    job.create()
    page = "<!doctype html><p>figures</p>"
    outputs.write_run(job, {"recipe": "demo"}, "unused", page=page)
    assert (tmp_path / "w" / "index.html").read_text() == page
    assert json.loads((tmp_path / "w" / "manifest.json").read_text()) == {"recipe": "demo", "gallery": "index.html"}
    assert not (tmp_path / "w" / "grid.png").exists()


def _recipe_trees():
    import ast
    import importlib.util
    from pathlib import Path

    from jfv.recipes import RECIPES

    def parse(module):
        path = Path(importlib.util.find_spec(module).origin)
        return ast.parse(path.read_text(), str(path))

    for name, module in sorted(RECIPES.items()):
        tree = parse(module)
        # with the recipe's own helper modules beside it (recipes/training/report.py serves train)
        helpers = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                   and n.module.startswith("jfv.recipes.") and n.module not in RECIPES.values()
                   and n.module != "jfv.recipes.common"}
        for helper in sorted(helpers):
            tree.body.extend(parse(helper).body)
        yield name, tree


def test_every_recipe_ends_through_write_run():
    """Each recipe in RECIPES calls write_run, and none writes index.html or manifest.json itself."""
    import ast

    names = []
    for name, tree in _recipe_trees():
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        called = {getattr(c.func, "attr", getattr(c.func, "id", None)) for c in calls}
        # write_attribution (jfv.attribute's and the attribute recipe's one writer) ends through write_run itself
        assert called & {"write_run", "write_attribution"}, f"recipe {name} does not end through outputs.write_run"
        direct = [c.args[0].value for c in calls
                  if getattr(c.func, "attr", None) in ("write_json", "write_text", "write_bytes", "save_png")
                  and c.args and isinstance(c.args[0], ast.Constant)
                  and c.args[0].value in (outputs.GALLERY, outputs.MANIFEST)]
        assert not direct, f"recipe {name} writes {direct} itself instead of through write_run"
        names.append(name)
    assert len(names) >= 19 and {"channels", "layer", "sweep", "study", "top_patches", "atlas"} <= set(names)
    from jfv.attribution import attribute

    writer = next(n for n in ast.walk(ast.parse(Path(attribute.__file__).read_text()))
                  if isinstance(n, ast.FunctionDef) and n.name == "write_attribution")
    assert "write_run" in {getattr(c.func, "attr", getattr(c.func, "id", None)) for c in ast.walk(writer)
                           if isinstance(c, ast.Call)}


def test_a_resumable_recipe_writes_through_write_run_on_its_job(tmp_path, monkeypatch):
    """channels / layer (a jobs.Job) ends through write_run: its manifest comes from that call, gallery first."""
    from configs import layer_tiny
    from jfv.recipes.optvis import channels as layer
    from jfv.recipes.optvis import channels_outputs

    seen = []
    real = outputs.write_run

    def spy(writer, manifest, *args, **kwargs):
        seen.append((type(writer).__name__, sorted(manifest)))
        return real(writer, manifest, *args, **kwargs)

    monkeypatch.setattr(channels_outputs, "write_run", spy)  # the recipe's gallery and manifest writer
    c = layer_tiny.get_config()
    c.channels, c.steps, c.image_size, c.layers = "0:2", 1, 32, "conv1_1"
    manifest = layer.run(c, str(tmp_path / "w"))
    assert seen and seen[-1][0] == "Job" and manifest["complete"] is True
    on_disk = json.loads((tmp_path / "w" / outputs.MANIFEST).read_text())
    assert on_disk["gallery"] == outputs.GALLERY and on_disk["channels"] == manifest["channels"]
    assert len(on_disk["channels"]) == 2 and (tmp_path / "w" / "sprite.png").exists()
