"""The top-patches job: its top-k equals brute force over the model's activations; killed with SIGKILL
at several points and resumed, its outputs are byte-equal to an uninterrupted run; SIGTERM
checkpoints the pass; bad input fails with one line and exit 2, writing nothing."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from killable import run_jfv

from jfv.analysis import datasets, topk
from jfv import models
from jfv.recipes.analysis import top_patches

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/top_patches_tiny.py"



@pytest.fixture(autouse=True)
def weights_dir():
    os.environ.setdefault("JFV_WEIGHTS_DIR", "/tmp/jfv-weights-analysis")


def cli(workdir, *extra, kill=None, shared=None):
    """``python -m jfv`` on the tiny config (or the driver that signals itself at ``kill=(method, n, signal)``)."""
    args = [f"--config={CONFIG}", f"--workdir={workdir}", *extra]
    if shared is not None:
        args.append(f"--config.shared_dir={shared}")
    return run_jfv(args, kill)


def outputs(workdir: Path) -> dict[str, bytes]:
    """Every file but the manifest (it holds the wall time), the gallery (likewise) and the lock."""
    skip = {"manifest.json", "index.html"}
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*"))
            if p.is_file() and p.name not in skip and not p.name.startswith(".jfv")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared):
    workdir = tmp_path_factory.mktemp("reference")
    res = cli(workdir, shared=shared)
    assert res.returncode == 0, res.stderr[-2000:]
    return workdir


def test_uninterrupted_run_writes_every_output(reference):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["images"] == 30 and manifest["read"] == 30 and manifest["skipped"] == 0
    assert manifest["projections"].startswith("deconvnet with switches")
    assert [b["layer"] for b in manifest["best_feature_map_per_block"]["blocks"]] == [
        "relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    for layer in ("conv3_1", "conv3_3"):
        summary = json.loads((reference / "layers" / f"{layer}.json").read_text())
        assert [c["channel"] for c in summary["channels"]] == list(range(8))
        for c in summary["channels"]:
            for reduce in ("max", "mean"):
                assert [h["rank"] for h in c[reduce]] == [0, 1, 2, 3]
                assert (reference / c[f"sheet_{reduce}"]).is_file()
                for h in c[reduce]:
                    assert (reference / h["patch"]).is_file() and (reference / h["projection"]).is_file()
                    if reduce == "max":  # the projected unit is the hit itself
                        assert h["unit_activation"] == pytest.approx(h["value"], rel=1e-5)
    assert not any((reference / "state").iterdir())
    assert not list(reference.rglob(".jfv-*"))


def test_top_k_equals_brute_force_over_the_activations(reference, shared, vgg16):
    source = datasets.cifar10("test", per_class=3, archive=shared / datasets.CIFAR10_ARCHIVE)
    images = datasets.load(source, source.ids, 32)
    x = np.stack([images[i] for i in range(len(source))])
    acts = vgg16(x)
    with np.load(reference / "topk.npz") as kept, np.load(reference / "scores.npz") as scores:
        for layer in ("conv3_1", "conv3_3"):
            a = np.asarray(acts[layer])
            flat = a.reshape(len(x), -1, a.shape[-1])
            for reduce, values in (("max", flat.max(1)), ("mean", flat.mean(1))):
                np.testing.assert_allclose(scores[f"{layer}.{reduce}"], values, rtol=1e-5, atol=1e-5)
                want_v, want_i = topk.brute_force(scores[f"{layer}.{reduce}"], np.arange(len(x)), 4)
                np.testing.assert_array_equal(kept[f"{layer}.{reduce}.ids"], want_i)
                np.testing.assert_array_equal(kept[f"{layer}.{reduce}.values"], want_v)
                # and the order agrees with the model's own numbers (no near-ties here)
                _, ids_np = topk.brute_force(values, np.arange(len(x)), 4)
                np.testing.assert_array_equal(kept[f"{layer}.{reduce}.ids"], ids_np)
            peak = flat.argmax(1)  # first maximum, row-major
            got = kept[f"{layer}.max.positions"]
            ids = kept[f"{layer}.max.ids"]
            w = a.shape[2]
            want = np.stack([peak[ids, np.arange(a.shape[-1])[:, None]] // w,
                             peak[ids, np.arange(a.shape[-1])[:, None]] % w], -1)
            np.testing.assert_array_equal(got, want)


# 30 images in batches of 4 (8 batches), a checkpoint every 2 batches (3 checkpoints: 2, 4, 6),
# then 2 layers x 2 groups of 4 channels, each group 4 x 2 x 2 hit PNGs + 4 x 2 sheets.
@pytest.mark.parametrize("kill", [
    ("save_state", 2),  # mid pass, after its second checkpoint
    ("save_png", 20),  # mid patches: the first group's PNGs half written, its record not
    ("finish", 3),  # the pass and two patch groups finished
], ids=["mid-pass", "mid-group", "after-record"])
def test_sigkill_then_resume_is_byte_equal(tmp_path, reference, shared, kill):
    res = cli(tmp_path, kill=(*kill, "SIGKILL"), shared=shared)
    assert res.returncode == -signal.SIGKILL
    assert not (tmp_path / "manifest.json").exists()
    res = cli(tmp_path, shared=shared)
    assert res.returncode == 0, res.stderr[-2000:]
    assert outputs(tmp_path) == outputs(reference)


def test_sigterm_checkpoints_the_pass_and_resumes(tmp_path, reference, shared):
    res = cli(tmp_path, kill=("save_state", 1, "SIGTERM"), shared=shared)
    assert res.returncode == 128 + signal.SIGTERM, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfv: interrupted by SIGTERM: checkpointed the pass after 12 of 30 "
                                                   "images"), lines
    with np.load(tmp_path / "state" / "pass.npz") as z:
        assert int(z["seen"].sum()) == 12 and int(z["batches"]) == 3
    res = cli(tmp_path, "--config.progress=True", shared=shared)  # a run key: may differ on resume
    assert res.returncode == 0, res.stderr[-2000:]
    assert outputs(tmp_path) == outputs(reference)


def test_a_changed_setting_is_refused(reference, shared):
    res = cli(reference, "--config.k=3", shared=shared)
    assert res.returncode == 2 and "k (4 -> 3)" in res.stderr and "Traceback" not in res.stderr


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written.


def test_bad_input_through_the_cli(tmp_path):
    res = cli(tmp_path / "run", "--config.k=0")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "jfv: error: k must be >= 1 (the top images kept per channel), got 0"]
    res = cli(tmp_path / "run", f"--config.dataset={tmp_path / 'nowhere'}")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "nowhere does not exist: pass a folder of images" in res.stderr
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def _config(**overrides):
    from configs import top_patches_tiny

    c = top_patches_tiny.get_config()
    for k, v in overrides.items():
        c[k] = v
    return c


@pytest.mark.parametrize("overrides, message", [
    ({"dataset": "EMPTY"}, "holds no images"),
    ({"k": -1}, "k must be >= 1"),
    ({"layers": "conv3_1,conv3_1"}, "names one twice"),
    ({"reductions": "max,median"}, "unknown reductions ['median']"),
    ({"layers": "conv9_9"}, "has no layer 'conv9_9'"),
    ({"devices": 2}, "devices=2 but only 1 are visible"),
    ({"devices": -2}, "devices must be an integer"),
])
def test_bad_input_writes_nothing(tmp_path, overrides, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    if overrides.get("dataset") == "EMPTY":
        overrides["dataset"] = str(tmp_path / "empty")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        top_patches.run(_config(**overrides), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "job.json").exists()


def test_a_layer_without_spatial_extent_is_refused(tmp_path, monkeypatch):
    real = models.load
    monkeypatch.setattr(top_patches.models, "load", lambda name, **kw: real("cifar_resnet20", pretrained=False))
    from jfv.analysis.patches import PatchError

    with pytest.raises(PatchError, match="layer 'avgpool' of cifar_resnet20 has no spatial extent.*pick a convolution"):
        top_patches.run(_config(model="cifar_resnet20", layers="avgpool"), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "job.json").exists()


def test_a_model_without_switches_gets_patches_only(tmp_path, monkeypatch, shared):
    real = models.load
    monkeypatch.setattr(top_patches.models, "load", lambda name, **kw: real("cifar_resnet20", pretrained=False))
    manifest = top_patches.run(_config(model="cifar_resnet20", layers="layer3", channels="0:2", per_class=1,
                                       shared_dir=str(shared)), str(tmp_path))
    assert "no deconvnet with switches" in manifest["projections"] and "patches only" in manifest["projections"]
    assert not (tmp_path / "blocks.png").exists()
    summary = json.loads((tmp_path / "layers" / "layer3.json").read_text())
    hit = summary["channels"][0]["max"][0]
    assert "projection" not in hit and (tmp_path / hit["patch"]).is_file()
    assert summary["receptive_field"] == {"size": 81, "stride": 4, "offset": -40}


def test_skipped_images_are_named_on_the_console(tmp_path):
    """An unreadable image in the dataset: the run finishes and one stderr note names it (and the count)."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "3_broken.jpg").write_bytes(b"not an image")
    res = cli(tmp_path / "run", f"--config.dataset={folder}", "--config.limit=0")
    assert res.returncode == 0, res.stderr[-2000:]
    notes = [line for line in res.stderr.splitlines() if line.startswith("note: skipped")]
    assert len(notes) == 1 and "skipped 1 of 4 images" in notes[0] and "3_broken.jpg" in notes[0], res.stderr[-2000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["skipped"] == 1


def _two_processes(workdir, extra=((), ())):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "jfv", f"--config={CONFIG}", f"--workdir={workdir}", "--config.distributed=True",
            f"--config.coordinator_address=localhost:{port}", "--config.num_processes=2"]
    procs = [subprocess.Popen(args + [f"--config.process_id={i}", *extra[i]], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    return [(p, *p.communicate(timeout=900)) for p in procs]


def test_two_processes_under_jax_distributed_write_the_one_process_outputs(tmp_path, reference, shared):
    """Each process reads every other image and renders every other patch group; process 0 combines the
    pass: every output (topk.npz, scores.npz, patches, sheets, layer summaries, records) byte-equal to
    the one-process run's, the parts' checkpoints gone."""
    results = _two_processes(tmp_path, ((f"--config.shared_dir={shared}",),) * 2)
    for p, _, err in results:
        assert p.returncode == 0, err[-3000:]
    got, want = outputs(tmp_path), outputs(reference)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []
    assert json.loads((tmp_path / "manifest.json").read_text())["processes"] == 2
    assert not any((tmp_path / "state").iterdir())


def test_a_dataset_one_process_cannot_see_stops_every_process_with_one_line(tmp_path):
    """Process 1 cannot see the dataset: it fails with the dataset's one line, and process 0, waiting for it
    at the first barrier, stops at once naming it (not minutes later at XLA's shutdown barrier)."""
    from PIL import Image

    (tmp_path / "img").mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 40, 3), 40 * i, np.uint8)).save(tmp_path / "img" / f"{i}.png")
    results = _two_processes(tmp_path / "work", ((f"--config.dataset={tmp_path}/img",),
                                                 (f"--config.dataset={tmp_path}/missing",)))
    (p0, _, err0), (p1, _, err1) = results
    line = f"dataset folder {tmp_path}/missing does not exist"
    assert p1.returncode == 2 and line in err1 and "Traceback" not in err1, err1[-2000:]
    assert p0.returncode == 2 and f"process 1 stopped: {line}" in err0 and "Traceback" not in err0, err0[-2000:]
    assert not (tmp_path / "work" / "topk.npz").exists()
