"""One rule for finding the shared data folder: explicit, else $JFV_SHARED, else <repo>/../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from jfv.analysis import datasets
from jfv.models import labels
from jfv.runtime import paths


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A fake checkout: tmp/repo (REPO) beside tmp/shared; $JFV_SHARED unset."""
    (tmp_path / "repo").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setattr(paths, "REPO", tmp_path / "repo")
    monkeypatch.delenv(paths.SHARED_ENV, raising=False)
    return tmp_path


def test_order_explicit_then_env_then_beside_the_repo(layout, monkeypatch):
    assert paths.find_shared() == layout / "shared"
    monkeypatch.setenv(paths.SHARED_ENV, str(layout / "elsewhere"))
    assert paths.find_shared() == layout / "elsewhere"
    assert paths.find_shared(layout / "repo") == layout / "repo"
    monkeypatch.setenv(paths.SHARED_ENV, str(layout / "missing"))  # a stale variable falls through
    assert paths.find_shared() == layout / "shared"
    assert paths.shared_candidates() == [layout / "missing", layout / "shared"]


def test_every_reader_uses_the_one_rule(layout, monkeypatch):
    monkeypatch.setenv(paths.SHARED_ENV, str(layout / "elsewhere"))
    assert labels.shared_dir() == datasets.shared_dir() == layout / "elsewhere"
    assert datasets.shared_dir(str(layout / "shared")) == layout / "shared"


def test_absent_folder_is_none_or_an_error_naming_the_fix(layout, monkeypatch):
    (layout / "shared").rmdir()
    assert paths.find_shared() is None and labels.shared_dir() is None
    with pytest.raises(datasets.DatasetError, match=r"shared folder not found \(tried .*shared\).*JFV_SHARED"):
        datasets.shared_dir()
    with pytest.raises(datasets.DatasetError, match=r"tried .*nowhere\)"):
        datasets.shared_dir(str(layout / "nowhere"))
    with pytest.raises(labels.LabelsError, match=r"set \$JFV_SHARED"):
        labels.imagenet()


def test_no_absolute_data_path_in_library_code():
    root = Path(paths.__file__).resolve().parents[1]  # jfv/
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "/work/" in p.read_text()]
    assert offenders == []
