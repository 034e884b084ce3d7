"""``python -m jfv.models build|convert|verify``: the one weights command line, and its old aliases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from jfv import models
from jfv.models import cli
from jfv.models.weights import restore

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_build_then_verify_then_a_corrupt_checkpoint_is_refused(tmp_path, capsys):
    status, out, err = run(capsys, "build", "--model=alexnet", f"--weights_dir={tmp_path}")
    assert (status, out, err) == (0, f"alexnet: {tmp_path / 'alexnet'}\n", "")
    params, manifest = restore(tmp_path / "alexnet", "rebuild", model="alexnet")
    assert params["conv1"]["kernel"].shape == (11, 11, 3, 64) and manifest["model"] == "alexnet"

    status, out, err = run(capsys, "verify", "--model=alexnet", f"--weights_dir={tmp_path}")
    assert status == 0 and err == ""
    assert out.startswith(f"alexnet: {tmp_path / 'alexnet'} is intact (13 layers); from ")
    assert out.rstrip().endswith("no PyTorch parity recorded")

    data = max((p for p in (tmp_path / "alexnet" / "params").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data.write_bytes(b"\0" * 100)
    status, out, err = run(capsys, "verify", "--model=alexnet", f"--checkpoint={tmp_path / 'alexnet'}")
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith(f"jfv.models: error: weights checkpoint {tmp_path / 'alexnet' / 'params'} ")

    status, out, err = run(capsys, "build", "--model=alexnet", f"--weights_dir={tmp_path}", "--force")
    assert status == 0
    fresh, _ = restore(tmp_path / "alexnet", "rebuild", model="alexnet")
    np.testing.assert_array_equal(fresh["conv5"]["kernel"], params["conv5"]["kernel"])


def test_bad_input_is_one_line_naming_the_fix(tmp_path, capsys):
    cases = [
        (["build", "--model=gray_cnn", f"--weights_dir={tmp_path}"],
         "jfv.models: error: gray_cnn is not built from a dependency (buildable: vgg16, alexnet); "
         "nothing to build: it has random weights only"),
        (["build", "--model=resnet50", f"--weights_dir={tmp_path}"],
         f"jfv.models: error: resnet50 is not built from a dependency (buildable: vgg16, alexnet); "
         f"{models.convert_command('resnet50', tmp_path)}"),
        (["verify", "--model=vgg16", f"--weights_dir={tmp_path}"],
         f"jfv.models: error: no converted vgg16 weights at {tmp_path / 'vgg16'}: make them first with "
         "python -m jfv.models build --model=vgg16 (or convert, for PyTorch checkpoints)"),
        (["verify", "--model=vgg19"], "jfv.models: error: unknown model 'vgg19'; valid models: alexnet, "),
        (["convert", "--model=cifar_resnet20", f"--checkpoint={tmp_path / 'nope.th'}"],
         f"jfv.models: error: checkpoint {tmp_path / 'nope.th'} does not exist; pass --checkpoint=PATH"),
    ]
    for argv, line in cases:
        status, out, err = run(capsys, *argv)
        assert status == 2 and out == "", argv
        assert len(err.strip().splitlines()) == 1 and err.startswith(line), (argv, err)
    assert list(tmp_path.iterdir()) == []  # nothing built, nothing half-written


def test_the_old_convert_command_still_works_with_a_note():
    """(``python -m jfv.weights``, the other old command: tests/models/test_weights.py.)"""
    res = subprocess.run([sys.executable, "-m", "jfv.convert", "--model=cifar_resnet20", "--checkpoint=missing.th"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "note: python -m jfv.convert is deprecated: use python -m jfv.models convert (same flags)",
        "jfv.convert: error: checkpoint missing.th does not exist; pass --checkpoint=PATH to a .pth/.th file"]
