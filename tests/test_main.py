"""The script end to end on the tiny config, and every bad input: one message, exit 2, no files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def run_jfv(*args, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "jfv", *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600
    )


def test_tiny_config_end_to_end(tmp_path):
    res = run_jfv("--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.channels=3:6")
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"] == "vgg16" and manifest["layer"] == "conv3_1"
    assert manifest["settings"]["steps"] == 4 and "jax" in manifest["versions"] and manifest["wall_time_s"] > 0
    assert [e["channel"] for e in manifest["channels"]] == [3, 4, 5]
    for e in manifest["channels"]:
        assert e["image"] == f"channels/conv3_1_{e['channel']:04d}.png"
        img = np.asarray(Image.open(tmp_path / e["image"]))
        assert img.shape == (32, 32, 3) and img.std() > 0  # not a blank image
        assert np.isfinite(e["objective"])
    sprite = np.asarray(Image.open(tmp_path / "sprite.png"))
    assert sprite.shape == (32 * 2 + 2, 32 * 2 + 2, 3)  # 3 images on a 2x2 grid with 2 px gaps
    html = (tmp_path / "index.html").read_text()
    assert html.count("<img") == 3 and "conv3_1 ch 4" in html
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jfv")]  # staging removed


BAD = [
    (["--config.model=vgg19"], "unknown model 'vgg19'; valid models: alexnet, alexnet_classifier, cifar_convnet, cifar_resnet20"),
    (["--config.layer=conv9_9"], "has no layer 'conv9_9'"),
    (["--config.channels=250:260"], "out of range"),
    (["--config.channels=a,b"], "cannot read channels"),
    (["--config.image_size=8", "--config.transforms=none", "--config.layer=conv5_1"], "use image_size >= 16"),
    (["--config.objective=banana"], "valid: channel, neuron, class"),
    (["--config.transforms=wobble"], "valid: standard, none"),
    (["--config.devices=64"], "devices=64"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[b[0][0].split("=")[0][9:] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_one_clear_message(tmp_path, overrides, message):
    workdir = tmp_path / "out"
    res = run_jfv("--config=configs/tiny.py", f"--workdir={workdir}", *overrides)
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not workdir.exists() or not any(workdir.iterdir())


def test_unknown_config_key_names_the_valid_ones(tmp_path):
    res = run_jfv("--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.layers=conv1_1")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "layers" in res.stderr and 'Did you mean "layer"' in res.stderr
    assert "Valid config keys: batch_size, channels" in res.stderr and "Traceback" not in res.stderr
    assert not any(tmp_path.iterdir())


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = run_jfv("--config=configs/tiny.py", f"--workdir={blocker}/out")
    assert res.returncode == 2 and "cannot write to workdir" in res.stderr and "--workdir" in res.stderr


def test_corrupt_weights_name_the_file(tmp_path):
    from jfv.models.weights import weights_dir

    good = weights_dir() / "vgg16"
    if not good.exists():
        pytest.skip("vgg16 weights not converted yet in this session")
    wroot = tmp_path / "w"
    shutil.copytree(good, wroot / "vgg16")
    data = max((p for p in (wroot / "vgg16" / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(b"\0" * 100)
    workdir = tmp_path / "out"
    res = run_jfv("--config=configs/tiny.py", f"--workdir={workdir}", env={"JFV_WEIGHTS_DIR": str(wroot)})
    assert res.returncode == 2, res.stderr[-2000:]
    assert str(wroot / "vgg16") in res.stderr and "python -m jfv.weights" in res.stderr
    assert not workdir.exists() or not any(workdir.iterdir())


def test_class_by_name_on_a_converted_cifar_resnet(tmp_path, shared):
    checkpoint = next((shared / "weights" / "cifar10-resnet").glob("resnet20-*.th"))
    env = {"JFV_WEIGHTS_DIR": str(tmp_path / "w")}
    conv = subprocess.run(
        [sys.executable, "-m", "jfv.convert", "--model=cifar_resnet20", f"--checkpoint={checkpoint}",
         f"--out={tmp_path / 'w' / 'cifar_resnet20'}"],
        cwd=REPO, env=dict(os.environ, **env), capture_output=True, text=True, timeout=600,
    )
    assert conv.returncode == 0, conv.stderr[-2000:]
    res = run_jfv("--config=configs/cifar_resnet20_class.py", f"--workdir={tmp_path / 'out'}", "--config.class_name=Cat",
                  "--config.steps=8", "--config.progress=false", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [e["channel"] for e in manifest["channels"]] == [3] and manifest["layer"] == "logits"
    bad = run_jfv("--config=configs/cifar_resnet20_class.py", f"--workdir={tmp_path / 'bad'}", "--config.class_name=kat", env=env)
    assert bad.returncode == 2 and "Close matches: 'cat'" in bad.stderr
    attr = run_jfv("--config=configs/attribute_cifar_class.py", f"--workdir={tmp_path / 'attr'}",
                   "--config.methods=saliency,grad_cam,cam", "--config.max_images=2", "--config.faithfulness_steps=2", env=env)
    assert attr.returncode == 0, attr.stderr[-2000:]
    manifest = json.loads((tmp_path / "attr" / "manifest.json").read_text())
    assert (tmp_path / "attr" / "grid.png").exists() and "cam" in json.dumps(manifest)


def test_help_is_a_usage_text_and_status_0(tmp_path):
    plain = run_jfv("--help")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert plain.stdout.startswith("usage: jfv --config=configs/<name>.py --workdir=DIR")
    assert "recipes: accentuate, activations," in plain.stdout and "top_patches, train" in plain.stdout
    with_config = run_jfv("-h", "--config=configs/tiny.py")
    assert with_config.returncode == 0 and "keys of configs/tiny.py: batch_size, channels," in with_config.stdout
    full = run_jfv("--helpfull")
    assert full.returncode == 0 and "--workdir" in full.stdout and "--[no]overwrite" in full.stdout
    assert not list(tmp_path.iterdir())  # nothing run, nothing written
