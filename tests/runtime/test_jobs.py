"""jfv.runtime.jobs: the workdir policy of long jobs (lock, foreign files, moving aside, versions, corrupt
state), atomic writes and records by hand, and the settings diff a refused resume names."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from jfv.runtime import jobs
from jfv.runtime.jobs import Job, ResumeError, StateError
from jfv.runtime.outputs import WorkdirError, to_uint8


def test_diff_settings_names_changed_added_and_removed_keys_sorted():
    old = {"steps": 4, "lr": 0.05, "seed": 0}
    new = {"steps": 8, "lr": 0.05, "devices": 2}
    assert jobs.diff_settings(old, new) == ["devices", "seed", "steps"]
    assert jobs.diff_settings(old, dict(old)) == []


def test_a_key_added_later_resumes_at_the_value_its_absence_meant(tmp_path):
    assert jobs.diff_settings({"steps": 4}, {"steps": 4, "path": ""}, absent={"path": ""}) == []
    assert jobs.diff_settings({"steps": 4, "path": ""}, {"steps": 4}, absent={"path": ""}) == []
    assert jobs.diff_settings({"steps": 4}, {"steps": 4, "path": "/data"}, absent={"path": ""}) == ["path"]
    with Job(tmp_path, "layer", {"steps": 4}) as job:  # written before "path" existed
        job.create()
    with Job(tmp_path, "layer", {"steps": 4, "path": "/data"}, absent={"path": ""}) as job, \
            pytest.raises(ResumeError, match=r"path \('<absent>' -> '/data'\)"):
        job.create()
    with Job(tmp_path, "layer", {"steps": 4, "path": ""}) as job, pytest.raises(ResumeError, match="path"):
        job.create()  # without the table, absence is a difference
    with Job(tmp_path, "layer", {"steps": 4, "path": ""}, absent={"path": ""}) as job:
        job.create()
        assert job.resumed
    # job.json now records the key, so other processes (which compare it whole) and later runs agree
    assert json.loads((tmp_path / "job.json").read_text())["settings"] == {"steps": 4, "path": ""}


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "a" / "b.bin"
    jobs.atomic_write(path, b"first")
    jobs.atomic_write(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert os.listdir(path.parent) == ["b.bin"]


def test_png_bytes_are_the_uint8_image(tmp_path):
    img = np.random.default_rng(1).uniform(size=(3, 4, 3)).astype(np.float32)
    (tmp_path / "x.png").write_bytes(jobs.png_bytes(img))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), to_uint8(img))


def test_records_finish_and_state_round_trip(tmp_path):
    with Job(tmp_path, "layer", {"steps": 1}) as job:
        job.create()
        job.save_state("b", {"x": np.arange(3.0)})
        assert not job.is_done("b")
        job.finish("b", {"channels": [1, 2]})
        job.finish("a", {"channels": [0]})
        assert job.is_done("a") and job.is_done("b") and not job.state_path("b").exists()
        assert job.records() == [{"channels": [0], "piece": "a"}, {"channels": [1, 2], "piece": "b"}]  # name order
        job.write_json("out.json", {"k": 1})
    assert json.loads((tmp_path / "out.json").read_text()) == {"k": 1}
    assert json.loads((tmp_path / "job.json").read_text())["settings"] == {"steps": 1}


def test_resume_false_moves_the_old_run_aside(tmp_path):
    (tmp_path / "run").mkdir()
    job = Job(tmp_path / "run", "layer", {"steps": 1})
    job.create()
    job.save_png("channels/a.png", [[[0.0, 0.5, 1.0]]])
    job.close()
    job = Job(tmp_path / "run", "layer", {"steps": 2}, resume=False)
    job.create()
    job.close()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and (aside[0] / "channels" / "a.png").exists()
    assert json.loads((tmp_path / "run" / "job.json").read_text())["settings"] == {"steps": 2}


def test_foreign_files_and_other_recipes_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with Job(tmp_path, "layer", {}) as job, pytest.raises(ResumeError, match=r"notes.txt.*use a new --workdir"):
        job.create()
    assert (tmp_path / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    with Job(other, "train", {}) as job:
        job.create()
    with Job(other, "layer", {}) as job, pytest.raises(ResumeError, match="holds a 'train' job, not 'layer'"):
        job.create()


def test_another_jfv_version_is_refused(tmp_path, monkeypatch):
    with Job(tmp_path, "layer", {}) as job:
        job.create()
    monkeypatch.setattr("jfv.runtime.jobs.version", lambda: "9.9")
    with Job(tmp_path, "layer", {}) as job, pytest.raises(ResumeError, match="written by jfv 0.1.0, this is jfv 9.9"):
        job.create()


def test_two_runs_cannot_share_a_workdir(tmp_path):
    first = Job(tmp_path, "layer", {})
    with pytest.raises(WorkdirError, match=rf"in use by another jfv run \(pid {os.getpid()}"):
        Job(tmp_path, "layer", {})
    first.close()
    Job(tmp_path, "layer", {}).close()  # released
    assert not (tmp_path / ".jfv.lock").exists()


def test_a_corrupt_checkpoint_names_the_file_and_the_fix(tmp_path):
    import numpy as np

    job = Job(tmp_path, "layer", {})
    job.create()
    job.save_state("conv3_1_g0000", {"history": np.zeros((2, 3), np.float32)})
    np.testing.assert_array_equal(job.load_state("conv3_1_g0000")["history"], np.zeros((2, 3)))
    p = job.state_path("conv3_1_g0000")
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(StateError, match=r"state/conv3_1_g0000.npz is corrupt or truncated.*load_state\(\.\.\., discard=True\)"):
        job.load_state("conv3_1_g0000")
    assert job.load_state("conv3_1_g0000", discard=True) is None
    assert not job.state_path("conv3_1_g0000").exists()
    job.close()


def test_claim_locks_and_removes_stale_staging(tmp_path):
    from jfv.runtime.jobs import claim

    (tmp_path / ".jfv-staging-dead").mkdir()
    (tmp_path / ".jfv-staging-dead" / "half.png").write_bytes(b"x")
    with claim(tmp_path):
        assert not (tmp_path / ".jfv-staging-dead").exists()
        with pytest.raises(WorkdirError, match="in use by another jfv run"):
            claim(tmp_path)
    with claim(tmp_path):
        pass
