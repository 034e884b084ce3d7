"""Converts a PyTorch checkpoint into a jfv orbax checkpoint, refusing anything it does not fully use.

    python -m jfv.models convert --model=resnet50 --checkpoint=resnet50-0676ba61.pth --out=weights/resnet50

Reads torchvision ``.pth`` state dicts (ResNet-18/34/50/101/152, VGG16, AlexNet with classifiers)
and akamaster/pytorch_resnet_cifar10's legacy-pickle ``.th`` files (a dict whose ``state_dict`` keys
carry a ``module.`` prefix). Every checkpoint key must land on a parameter and every parameter must
be filled, with the right shape; otherwise nothing is written and the missing, unexpected and
mis-shaped keys are listed (exit status 2). Reading a PyTorch checkpoint needs torch (``pip install
-e '.[torch]'``; without it the command stops with that fix). The converted network is checked
against the registry entry's PyTorch reference (``jfv.models.torch_reference``, imported only here)
on random inputs at every named layer before anything is written; the errors go into the manifest.

Layout rules: conv ``weight`` (O, I, kh, kw) -> ``kernel`` (kh, kw, I, O); linear ``weight``
(out, in) -> ``kernel`` (in, out) (the flatten before VGG's and AlexNet's first linear layer is done
in NCHW order inside the Flax model, so no row permutation is needed); BatchNorm ``weight, bias,
running_mean, running_var`` -> ``scale, bias, mean, var``; ``num_batches_tracked`` carries nothing
at inference and is accepted where a BatchNorm expects it.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jfv.runtime import errors
from jfv import models
from jfv.models import registry
from jfv.models.weights import MANIFEST, check_target, library_versions, save, sha256_file, weights_dir

# Relative tolerance of the parity check: max |flax - torch| <= VERIFY_RTOL * max |torch| per layer.
# float32 round-off over ~150 layers stays below 1e-5 relative; 1e-4 leaves margin for BLAS order.
VERIFY_RTOL = 1e-4
MODULE_PREFIX = "module."  # torch.nn.DataParallel wraps every key in it (akamaster's checkpoints)
OPTIONAL_BN_KEY = "num_batches_tracked"  # a training counter, absent from pre-0.4.1 checkpoints
LIST_LIMIT = 12  # keys listed per category in an error message
PROG = "jfv.convert"
OUT_FIX = "pass --out=a new or empty folder"


class ConversionError(ValueError):
    """A checkpoint that cannot be converted exactly; the message says what is wrong and the fix."""


LEAF_NAMES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


def torch_key(model: str, path: Sequence[str]) -> str:
    """The PyTorch state-dict key of the Flax parameter at ``path`` (module names..., leaf).

    The registry entry's ``torch_modules`` table maps names that differ (``conv4_3`` -> torchvision's
    ``features.28``); without one the Flax names are torchvision's with ``.`` spelt ``_``
    (``layer1_0/downsample_0``).
    """
    *modules, leaf = path
    table = models.ARCHITECTURES[model].weights.torch_modules
    if table is not None:
        prefix = ".".join(table[m] for m in modules)
    else:
        prefix = ".".join(m.replace("_", ".") for m in modules)
    return f"{prefix}.{'weight' if leaf == 'kernel' else LEAF_NAMES[leaf]}"


def _to_flax(leaf: str, value: np.ndarray) -> np.ndarray:
    if leaf == "kernel" and value.ndim == 4:
        return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if leaf == "kernel" and value.ndim == 2:
        return value.T  # (out, in) -> (in, out)
    return value


@functools.lru_cache(maxsize=None)
def _expected(model: str) -> tuple:
    arch = models.ARCHITECTURES[model]
    module = arch.module()
    x = jax.ShapeDtypeStruct((1, arch.image_size, arch.image_size, arch.channels), jnp.float32)
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
        names = tuple(p.key for p in path)
        out.append((torch_key(model, names), (names, tuple(leaf.shape))))
    return tuple(out)


def expected_params(model: str) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    """torch key -> (Flax path, Flax shape) for every parameter of the registered ``model``."""
    return dict(_expected(model))


def _listing(title: str, keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:LIST_LIMIT])
    more = f" ... and {len(keys) - LIST_LIMIT} more" if len(keys) > LIST_LIMIT else ""
    return f"\n  {len(keys)} {title}: {shown}{more}"


def guess_model(state_dict: Mapping[str, np.ndarray]) -> str | None:
    """The registered architecture a state dict fits exactly (keys and shapes), or None.

    Asks every registry entry converted from PyTorch for its full parameter list (keys first, then
    shapes); the first that fits is the answer.
    """
    keys = {k for k in state_dict if not k.endswith(OPTIONAL_BN_KEY)}
    for name in models.ARCHITECTURES:
        expected = expected_params(name)
        if keys == set(expected) and all(
            _to_flax(path[-1], np.asarray(state_dict[k])).shape == shape for k, (path, shape) in expected.items()
        ):
            return name
    return None


def convert_state_dict(model: str, state_dict: Mapping[str, Any], source: str = "state dict") -> dict:
    """The Flax params of ``model`` filled from a PyTorch state dict, using every key exactly once.

    Args:
        model: a name in ``jfv.models.ARCHITECTURES``, e.g. ``"resnet50"``.
        state_dict: torch key -> array (numpy or torch tensor); ``module.`` prefixes already removed.
        source: what to call the state dict in error messages.

    Returns:
        nested dict of float32 numpy arrays in the layout ``model``'s Flax module expects.

    Raises:
        ConversionError: listing missing keys, unexpected keys and shape mismatches, and naming the
            registered architectures the state dict does fit, if any.
    """
    if model not in models.ARCHITECTURES:
        raise ConversionError(
            f"jfv cannot convert a {model!r} checkpoint; convertible models: {', '.join(models.ARCHITECTURES)}"
        )
    expected = expected_params(model)
    bn_prefixes = {k.rsplit(".", 1)[0] for k in expected if k.endswith(".running_mean")}
    given = {k: _numpy(v) for k, v in state_dict.items()}
    missing = sorted(k for k in expected if k not in given)
    unexpected = sorted(
        k for k in given
        if k not in expected and not (k.endswith("." + OPTIONAL_BN_KEY) and k.rsplit(".", 1)[0] in bn_prefixes)
    )
    mismatched = []
    params: dict[str, Any] = {}
    for key, (path, shape) in expected.items():
        if key not in given:
            continue
        value = _to_flax(path[-1], given[key])
        if value.shape != shape:
            mismatched.append(f"{key} {tuple(given[key].shape)} (expected {_torch_shape(path[-1], shape)})")
            continue
        node = params
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = np.ascontiguousarray(value, dtype=np.float32)
    if missing or unexpected or mismatched:
        fits = guess_model(given)
        hint = (
            f"\nIt is a {fits} checkpoint: convert it with --model={fits}."
            if fits
            else f"\nIs it a checkpoint of another architecture? jfv converts: {', '.join(models.ARCHITECTURES)}."
        )
        raise ConversionError(
            f"{source} does not match {model}; nothing was written."
            + (_listing("missing keys", missing) if missing else "")
            + (_listing("unexpected keys", unexpected) if unexpected else "")
            + (_listing("shape mismatches", mismatched) if mismatched else "")
            + hint
        )
    return params


def _torch_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if leaf == "kernel" and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    if leaf == "kernel" and len(shape) == 2:
        return (shape[1], shape[0])
    return shape


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value)


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The state dict in a ``.pth``/``.th`` file, ``state_dict`` unwrapped and ``module.`` stripped.

    Raises:
        ConversionError: the file is missing, truncated or corrupt, or holds no state dict; or torch
            is not installed.
    """
    path = Path(path)
    if path.is_dir():
        if (path / MANIFEST).exists():
            raise ConversionError(
                f"{path} is a converted jfv checkpoint already, not a PyTorch file: load it with "
                f"jfv.models.load(NAME, checkpoint={str(path)!r})"
            )
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".pth", ".th", ".pt"))
        inside = f" (it holds {', '.join(found[:5])})" if found else ""
        raise ConversionError(f"checkpoint {path} is a folder{inside}; pass --checkpoint=PATH to the .pth/.th file itself")
    if not path.is_file():
        raise ConversionError(f"checkpoint {path} does not exist; pass --checkpoint=PATH to a .pth/.th file")
    try:
        torch = registry.require_torch("reading PyTorch checkpoints")
    except registry.TorchMissingError as e:
        raise ConversionError(str(e)) from None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip reader, unpickler and EOF errors for truncated files
        raise ConversionError(
            f"cannot read {path} as a PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]}); it is "
            f"truncated or corrupt: download it again and check its sha256 ({sha256_file(path)[:8]}... now)"
        ) from None
    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not all(hasattr(v, "shape") for v in raw.values()):
        raise ConversionError(
            f"{path} holds a {type(raw).__name__}, not a state dict of tensors (or a dict with key "
            "'state_dict'); save the model's state_dict(), not the model object"
        )
    if raw and all(k.startswith(MODULE_PREFIX) for k in raw):
        raw = {k[len(MODULE_PREFIX):]: v for k, v in raw.items()}
    return {k: _numpy(v) for k, v in raw.items()}


def verify(model: str, params: Mapping[str, Any], state_dict: Mapping[str, np.ndarray],
           image_size: int, seed: int = 0, batch: int = 2) -> dict[str, float]:
    """Max relative error ``max|flax - torch| / max|torch|`` per named layer on uniform [0, 1] images.

    The reference is the registry entry's PyTorch reference with the state dict loaded strictly.

    Raises:
        ConversionError: a layer differs by more than ``VERIFY_RTOL``, or the layouts disagree.
    """
    torch = registry.require_torch("the PyTorch parity check")
    net = registry.torch_reference(models.ARCHITECTURES[model])
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()}, strict=True)
    images = np.array(jax.random.uniform(jax.random.key(seed), (batch, image_size, image_size, 3)))
    with torch.no_grad():
        ref = net(torch.from_numpy(images).permute(0, 3, 1, 2))
    module = models.ARCHITECTURES[model].module()
    ours = module.apply({"params": jax.tree.map(jnp.asarray, params)}, jnp.asarray(images))
    if set(ours) != set(ref):
        raise ConversionError(f"reference and jfv {model} name different layers: {sorted(set(ours) ^ set(ref))}")
    errors = {}
    for name, value in ref.items():
        value = value.numpy()
        if value.ndim == 4:
            value = value.transpose(0, 2, 3, 1)
        scale = float(np.max(np.abs(value))) or 1.0
        errors[name] = float(np.max(np.abs(np.asarray(ours[name]) - value))) / scale
    bad = {k: v for k, v in errors.items() if v > VERIFY_RTOL}
    if bad:
        raise ConversionError(
            f"converted {model} differs from the PyTorch reference at {image_size} px (relative "
            f"errors above {VERIFY_RTOL}): {bad}; nothing was written. Please report this as a jfv bug."
        )
    return errors


def convert(model: str, checkpoint: str | Path, out: str | Path, verify_size: int | None = None,
            check: bool = True) -> tuple[Path, dict[str, Any]]:
    """Reads, converts, verifies (when torch is installed and ``check``) and saves a checkpoint.

    Returns:
        (output directory, manifest written beside the params).
    """
    check_target(out, OUT_FIX)  # before the slow part: never replace files jfv did not write
    checkpoint = Path(checkpoint)
    state_dict = read_checkpoint(checkpoint)
    params = convert_state_dict(model, state_dict, source=str(checkpoint))
    manifest: dict[str, Any] = {
        "model": model,
        "source": str(checkpoint.resolve()),
        "source_sha256": sha256_file(checkpoint),
        "converter": "jfv.convert",
    }
    if check:
        size = verify_size or models.ARCHITECTURES[model].image_size
        errors = verify(model, params, state_dict, size)
        manifest["verified"] = {"image_size": size, "max_relative_error": max(errors.values()),
                                "rtol": VERIFY_RTOL}
        import torch

        manifest["torch"] = torch.__version__
    directory = save(out, params, manifest)
    return directory, {**manifest, "versions": library_versions()}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"{getattr(self, 'prog_name', PROG)}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(errors.EXIT_ERROR)


def main(argv: Sequence[str] | None = None, prog: str = PROG, command: str = "python -m jfv.convert") -> int:
    """Command line: ``python -m jfv.convert --model=NAME --checkpoint=PATH [--out=DIR]``.

    Returns the exit status: 2 with one message on stderr when the checkpoint cannot be converted
    exactly or ``--out`` holds files jfv did not write (``jfv.runtime.errors``), 130 on Ctrl-C.
    """
    parser = _Parser(prog=command, description=__doc__.split("\n")[0])
    parser.prog_name = prog  # the name its one-line errors start with
    parser.add_argument("--model", required=True, choices=sorted(models.ARCHITECTURES))
    parser.add_argument("--checkpoint", required=True, help="torchvision .pth or akamaster .th file")
    parser.add_argument("--out", default=None, help="output directory (default: <weights_dir>/<model>); "
                        "new, empty, or a jfv checkpoint to replace")
    parser.add_argument("--verify_size", type=int, default=None,
                        help="image size of the PyTorch parity check (default: the model's)")
    parser.add_argument("--noverify", action="store_true", help="skip the PyTorch parity check")
    args = parser.parse_args(argv)
    return errors.report(prog, _convert, args)


def _convert(args: argparse.Namespace) -> None:
    out = Path(args.out) if args.out else weights_dir() / args.model
    check = not args.noverify
    if check:
        try:
            import torch  # noqa: F401
        except ImportError:
            check = False
    directory, manifest = convert(args.model, args.checkpoint, out, args.verify_size, check)
    verified = manifest.get("verified")
    status = (
        f"matches PyTorch at every layer (max relative error {verified['max_relative_error']:.1e} "
        f"at {verified['image_size']} px)" if verified else "NOT verified against PyTorch"
    )
    print(f"converted {args.model} from {args.checkpoint} into {directory}: {status}")


if __name__ == "__main__":
    errors.catch_ctrl_c()
    print("note: python -m jfv.convert is deprecated: use python -m jfv.models convert (same flags)", file=sys.stderr)
    try:
        errors.finish(main(sys.argv[1:]))
    except KeyboardInterrupt:  # during argument parsing
        print(f"{PROG}: interrupted", file=sys.stderr)
        errors.finish(errors.EXIT_INTERRUPTED)
