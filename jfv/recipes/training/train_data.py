"""The ``train`` recipe's images: the CIFAR-10 archive's training and test splits, with a validation
split held out of the training images where the config asks for one."""

from __future__ import annotations

from typing import Any, NamedTuple

import ml_collections
import numpy as np

from jfv import training
from jfv.analysis import datasets
from jfv.recipes.common import cifar10_location


class Data(NamedTuple):
    """A run's images: (uint8 images, labels) per split; ``val`` is None without a validation split."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]
    archive: Any


def load_data(config: ml_collections.ConfigDict) -> Data:
    """The training and test images of the archive, with ``val_per_class`` of each class's training
    images held out for validation (the same images for every seed)."""
    archive = cifar10_location(config)
    data = datasets.cifar10_subsets(archive, {"train": config.train_per_class, "test": config.test_per_class})
    (x, y), val = data["train"], None
    if int(config.get("val_per_class", 0)):
        keep, held = training.holdout(y, int(config.val_per_class))
        (x, y), val = (x[keep], y[keep]), (x[held], y[held])
    return Data((x, y), val, data["test"], archive)
