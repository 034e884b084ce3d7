"""Shared fixtures: real models loaded once per session, the ../shared folder when present."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """``$JFV_SHARED``, else ``../shared`` beside the repository; None when absent (``jfv.runtime.paths``)."""
    from jfv.runtime.paths import find_shared

    return find_shared()


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is absent (set JFV_SHARED to its path); CI always has it")
    return path


@pytest.fixture(scope="session")
def vgg16():
    from jfv import models

    return models.load("vgg16")


@pytest.fixture(scope="session")
def alexnet():
    from jfv import models

    return models.load("alexnet")


@pytest.fixture(scope="session")
def gray():
    from jfv import models

    return models.load("gray_cnn")


@pytest.fixture(scope="session")
def vit():
    from jfv import models

    return models.load("vit_tiny")
