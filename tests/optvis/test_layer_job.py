"""The whole-layer job: killed at several points and resumed, it ends with every channel exactly once
and PNGs byte-equal to an uninterrupted run; SIGTERM checkpoints; other settings are refused; the
workdir policy holds through the CLI (the Job itself: tests/runtime/test_jobs.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from killable import run_jfv

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/layer_tiny.py"
# 6 channels in 3 groups of 2, 8 steps, a checkpoint every 2 steps.
OVERRIDES = ["--config.steps=8", "--config.checkpoint_every=2"]



def cli(workdir, *extra, kill=None):
    """Runs ``python -m jfv`` (or the driver that signals itself at ``kill=(method, n, signal)``)."""
    args = [f"--config={CONFIG}", f"--workdir={workdir}", *OVERRIDES, *extra]
    return run_jfv(args, kill)


def pngs(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / "channels").glob("*.png"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    res = cli(workdir)
    assert res.returncode == 0, res.stderr[-2000:]
    return workdir


def check_complete(workdir: Path, reference: Path) -> None:
    assert pngs(workdir) == pngs(reference)  # byte-equal
    records = [json.loads(p.read_text()) for p in sorted((workdir / "records").glob("*.json"))]
    channels = [c for r in records for c in r["channels"]]
    assert sorted(channels) == list(range(6)) and len(channels) == 6  # each exactly once
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["complete"] and [e["channel"] for e in manifest["channels"]] == list(range(6))
    ref = json.loads((reference / "manifest.json").read_text())
    assert [e["objective"] for e in manifest["channels"]] == [e["objective"] for e in ref["channels"]]
    assert (workdir / "sprite.png").read_bytes() == (reference / "sprite.png").read_bytes()
    assert not any((workdir / "state").iterdir())  # no in-flight state left
    assert not [p for p in workdir.rglob(".jfv-*")]  # no temporary files left


def test_uninterrupted_run_writes_every_channel(reference):
    assert sorted(pngs(reference)) == [f"conv3_1_{c:04d}.png" for c in range(6)]
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["layers"] == {"conv3_1": {"channels": 6, "finished": 6}}
    assert "complete" in (reference / "index.html").read_text()


@pytest.mark.parametrize("kill", [
    ("save_state", 1),  # mid group 0, after its first checkpoint
    ("save_state", 5),  # mid group 1 (group 0's two checkpoints before step 8, then group 1's)
    ("save_png", 3),  # group 1's first PNG written, its record not
    ("finish", 2),  # group 1's record written
], ids=["mid-group-0", "mid-group-1", "between-pngs", "after-record"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, reference, kill):
    res = cli(tmp_path, kill=(*kill, "SIGKILL"))
    assert res.returncode == -signal.SIGKILL
    assert len(pngs(tmp_path)) < 6
    res = cli(tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    check_complete(tmp_path, reference)


def test_sigterm_checkpoints_exits_cleanly_and_resumes(tmp_path, reference):
    res = cli(tmp_path, kill=("save_state", 1, "SIGTERM"))
    assert res.returncode == 128 + signal.SIGTERM, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert lines[0].startswith("jfv: interrupted by SIGTERM: checkpointed conv3_1 group 0 at step"), lines
    assert (tmp_path / "state" / "conv3_1_g0000.npz").is_file() and not (tmp_path / "records").exists()
    res = cli(tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    check_complete(tmp_path, reference)


def test_a_changed_setting_is_refused_naming_the_keys(reference):
    res = cli(reference, "--config.steps=5", "--config.seed=3")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "seed (0 -> 3), steps (8 -> 5)" in res.stderr and "--config.resume=False" in res.stderr
    res = cli(reference, "--config.precision=bfloat16")  # precision changes the images too
    assert res.returncode == 2 and "precision ('float32' -> 'bfloat16')" in res.stderr, res.stderr[-2000:]
    # Settings that do not change an image may differ: a resume of a finished job writes nothing new.
    before = pngs(reference)
    assert cli(reference, "--config.checkpoint_every=3", "--config.progress=True").returncode == 0
    assert pngs(reference) == before


# ---------------------------------------------------------------------------------------------
# The workdir policy, in-process.


def test_a_bfloat16_layer_job_is_killed_and_resumes_byte_equal(tmp_path):
    """bf16 through the whole job: SIGKILL mid-group, resume, and the PNGs equal an uninterrupted
    bf16 run's (bf16 is as deterministic as fp32 on one machine)."""
    bf16 = ["--config.precision=bfloat16", "--config.channels=0:2"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert cli(whole, *bf16).returncode == 0
    res = cli(killed, *bf16, kill=("save_state", 2, "SIGKILL"))
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert cli(killed, *bf16).returncode == 0
    assert pngs(killed) == pngs(whole) and len(pngs(whole)) == 2
    manifest = json.loads((whole / "manifest.json").read_text())
    assert manifest["settings"]["precision"] == "bfloat16"


def test_a_corrupt_checkpoint_through_the_cli(tmp_path, reference):
    res = cli(tmp_path, kill=("save_state", 1, "SIGKILL"))
    assert res.returncode == -signal.SIGKILL
    for p in (tmp_path / "state").rglob("*"):
        if p.is_file():
            p.write_bytes(b"")
    res = cli(tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "corrupt or truncated" in res.stderr and "discard_state=True" in res.stderr
    res = cli(tmp_path, "--config.discard_state=True")
    assert res.returncode == 0, res.stderr[-2000:]
    check_complete(tmp_path, reference)


def test_a_checkpoint_of_another_group_is_refused_then_discarded(tmp_path, reference):
    """Engine.restore_state checks every leaf against the group's state: a leaf of another shape, a
    missing leaf or other channels are refused naming the fix, never resumed into wrong images."""
    import numpy as np

    res = cli(tmp_path, kill=("save_state", 1, "SIGKILL"))
    assert res.returncode == -signal.SIGKILL
    path = tmp_path / "state" / "conv3_1_g0000.npz"
    with np.load(path) as f:
        good = {k: f[k] for k in f.files}
    for change in [lambda t: t.update(leaf_0000=t["leaf_0000"][:1]), lambda t: t.pop("leaf_0001"),
                   lambda t: t.update(channels=t["channels"][::-1].copy())]:
        tree = dict(good)
        change(tree)
        np.savez(path, **tree)
        res = cli(tmp_path)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert "does not fit this job's group" in res.stderr and "discard_state=True" in res.stderr
    res = cli(tmp_path, "--config.discard_state=True")
    assert res.returncode == 0, res.stderr[-2000:]
    check_complete(tmp_path, reference)


def test_bad_layer_job_input(tmp_path):
    for extra, message in [
        (["--config.layers=conv3_1,conv3_1"], "names a layer twice"),
        (["--config.batch_size=-1"], "batch_size must be an integer >= 0"),
        (["--config.checkpoint_every=-1"], "checkpoint_every must be an integer >= 0"),
        (["--config.precision=fp16"], "precision must be one of float32, bfloat16"),
        (["--config.distributed=True"], "distributed=True but no coordinator"),
        (["--config.image_size=100000"], "image(s) per call needs about"),  # checked before anything is written
    ]:
        res = cli(tmp_path / "bad", *extra)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, (extra, res.stderr)
    assert not (tmp_path / "bad" / "job.json").exists()


def test_two_processes_with_jax_distributed_equal_one(tmp_path, reference):
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "jfv", f"--config={CONFIG}", f"--workdir={tmp_path}", *OVERRIDES,
            "--config.distributed=True", f"--config.coordinator_address=localhost:{port}", "--config.num_processes=2"]
    procs = [subprocess.Popen(args + [f"--config.process_id={i}"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    # Groups 0 and 2 are process 0's, group 1 process 1's; process 0 wrote the summary.
    records = {json.loads(p.read_text())["group"] for p in (tmp_path / "records").glob("*.json")}
    assert records == {0, 1, 2}
    assert not list(tmp_path.glob(".jfv.lock*"))  # both released and removed
    check_complete(tmp_path, reference)


def test_channels_all_needs_a_channel_axis():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from jfv.models.base import Model
    from jfv.recipes.common import ConfigError
    from jfv.recipes.optvis.channels import layer_channels

    class Scorer(nn.Module):
        @nn.compact
        def __call__(self, x):
            conv = nn.Conv(4, (3, 3), name="conv")(x)
            return {"conv": conv, "score": conv.mean(axis=(1, 2, 3))}  # (N,): no channel axis

    module = Scorer()
    params = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))["params"]
    model = Model("scorer", module, params, {"conv": 4, "score": 1}, image_size=8)
    assert layer_channels(model, "conv", "all", 8) == [0, 1, 2, 3]
    assert layer_channels(model, "conv", "1:3", 8) == [1, 2]
    with pytest.raises(ConfigError, match=r"layer 'score' of scorer has no channel axis \(output shape \(1,\)\)"):
        layer_channels(model, "score", "all", 8)


# ---------------------------------------------------------------------------------------------
# One-shot recipes (interpolate, study, attribute, ...): the same lock, no mixing with earlier runs.


def run_tiny(workdir, *extra, config="configs/tiny.py"):
    return subprocess.run([sys.executable, "-m", "jfv", f"--config={config}", f"--workdir={workdir}", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_a_one_shot_run_refuses_a_used_workdir_unless_overwrite(tmp_path):
    run = lambda *extra: run_tiny(tmp_path, "--config.steps=1", *extra, config="configs/interpolate_tiny.py")
    assert run().returncode == 0
    first = (tmp_path / "manifest.json").read_bytes()
    res = run("--config.pairs=3-5")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "already holds files (index.html, manifest.json, sprite.png, strips)" in res.stderr
    assert "--overwrite" in res.stderr and (tmp_path / "manifest.json").read_bytes() == first
    res = run("--config.pairs=3-5", "--overwrite")
    assert res.returncode == 0, res.stderr[-2000:]
    aside = [p for p in tmp_path.parent.iterdir() if p.name.startswith(tmp_path.name + ".old-")]
    assert len(aside) == 1 and (aside[0] / "manifest.json").read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "strips").iterdir()) == ["conv3_1_0003_0005.png"]  # no orphans
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jfv")]


def test_the_quick_start_recipe_resumes_and_overwrite_starts_over(tmp_path):
    """channels (the quick start's recipe) is the resumable job: a second run with more channels
    renders only those, leaves the finished ones' bytes alone and lists the channels asked for;
    --overwrite moves the earlier run aside, as --config.resume=False does."""
    assert run_tiny(tmp_path).returncode == 0
    first = (tmp_path / "channels" / "conv3_1_0003.png").read_bytes()
    res = run_tiny(tmp_path, "--config.channels=3,5,7")
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["channel"] for e in manifest["channels"]] == [3, 5, 7] and manifest["complete"]
    assert (tmp_path / "channels" / "conv3_1_0003.png").read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == ["conv3_1_g0000.json", "conv3_1_g0001.json"]
    res = run_tiny(tmp_path, "--config.steps=3")  # another image: refused, naming the key and the fix
    assert res.returncode == 2 and "steps (4 -> 3)" in res.stderr and "--config.resume=False" in res.stderr
    res = run_tiny(tmp_path, "--config.channels=7", "--overwrite")
    assert res.returncode == 0, res.stderr[-2000:]
    aside = [p for p in tmp_path.parent.iterdir() if p.name.startswith(tmp_path.name + ".old-")]
    assert len(aside) == 1 and (aside[0] / "channels" / "conv3_1_0003.png").read_bytes() == first
    assert sorted(p.name for p in (tmp_path / "channels").iterdir()) == ["conv3_1_0007.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".jfv")]
