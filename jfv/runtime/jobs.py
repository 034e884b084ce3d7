"""Long jobs in a workdir: one owner at a time, settings that must match to resume, every finished
piece written atomically as it is done, and the in-flight piece's state in a checkpoint.

The workdir policy (every long job: whole layers, dataset passes, training):

- ``job.json`` names the recipe, the jfv version and every setting that changes a result. A run on
  a workdir with the same ``job.json`` resumes; other settings, another recipe or another jfv
  version are refused with the differing keys and the fix (a new workdir, or ``resume=False``,
  which first moves the earlier outputs aside into ``<workdir>.old-<time>``). A non-empty workdir
  without ``job.json`` (the user's files, another kind of run) is refused: jfv never deletes or
  overwrites what it did not write.
- A lock (``fcntl.flock`` on ``.jfv.lock``, one per process of a distributed job) keeps two runs out
  of one workdir; the kernel releases it when the process dies, even by SIGKILL.
- Finished work is written piece by piece, each file by write-to-temporary-then-rename, and a
  piece's record (``records/<piece>.json``) last: a piece is finished exactly when its record
  exists, so a kill at any moment leaves either the old or the new file, never half of one.
- The in-flight piece's state lives in ``state/<piece>.npz`` and is removed once its record is
  written. A corrupt or truncated state is reported with its path; ``discard_state=True`` starts
  that piece again.
- SIGTERM and SIGINT set a flag; the job checkpoints at the next chunk boundary and stops with
  ``Interrupted`` (exit status 128 + the signal number).

Example:
    >>> job = Job(workdir, "layer", {"model": "vgg16", "steps": 512})
    >>> if not job.is_done("conv4_3_g0000"):
    ...     job.save_png("channels/conv4_3_0000.png", image)
    ...     job.finish("conv4_3_g0000", {"channels": [0]})
    >>> job.close()
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import io
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jfv.runtime.outputs import WorkdirError, check_workdir, to_uint8

JOB_FILE = "job.json"
RECORDS = "records"
STATE = "state"
STAGING_PREFIX = ".jfv-"


# How a Job's messages name the ways out of a refused resume and of a damaged checkpoint.
FIXES = {"resume": "resume=False", "discard_state": "load_state(..., discard=True)"}


class ResumeError(ValueError):
    """A workdir that holds another job; the message names the differences and the fix."""


class StateError(ValueError):
    """An in-flight checkpoint that cannot be read; the message names it and how to discard it."""


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived: the job checkpointed and stopped; ``signum`` says which."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def version() -> str:
    from jfv.runtime.version import __version__

    return __version__


def diff_settings(old: Mapping[str, Any], new: Mapping[str, Any], absent: Mapping[str, Any] | None = None) -> list[str]:
    """The keys whose values differ (or exist on one side only), sorted. A key in ``absent`` that one
    side lacks counts as holding ``absent[key]`` there: a setting added to a recipe later, whose value
    there means what a job written before it did."""
    absent = absent or {}
    return sorted(k for k in set(old) | set(new)
                  if old.get(k, absent.get(k, "<absent>")) != new.get(k, absent.get(k, "<absent>")))


def atomic_write(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder and one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX + "tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def png_bytes(image: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def claimable(directory: str | os.PathLike, overwrite: bool) -> Path:
    """``directory``, created and writable, refused with the fix when it holds files and not ``overwrite``
    (where a notebook result's ``save`` writes).

    Args:
        directory: where a result is saved.
        overwrite: whether files there may be moved aside (to ``<directory>.old-<time>``).

    Returns:
        The directory's path.

    Raises:
        WorkdirError: it cannot be written, or holds files and ``overwrite`` is False.
    """
    path = check_workdir(directory)
    existing = visible_files(path)
    if existing and not overwrite:
        shown = ", ".join(existing[:4]) + (" ..." if len(existing) > 4 else "")
        raise WorkdirError(f"{path} already holds files ({shown}): save into a new directory, or pass "
                           f"overwrite=True to move them to {path}.old-<time> first")
    return path


class WorkdirLock:
    """An exclusive ``fcntl.flock`` on ``<workdir>/<name>``: a second run gets a clear error; the
    kernel releases it when the process dies (even by SIGKILL). ``close`` removes the file while
    still holding it, so a finished run leaves nothing behind."""

    def __init__(self, workdir: Path, name: str = ".jfv.lock"):
        self.file = Path(workdir) / name
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise WorkdirError(
                    f"workdir {workdir} is in use by another jfv run ({holder}); wait for it to finish, "
                    f"or use another --workdir") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        self.fd: int | None = fd

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.file.unlink()
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "WorkdirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def move_aside(path: Path, keep: tuple[str, ...] = (".jfv.lock",)) -> Path:
    """Moves everything in ``path`` (but the lock) into a new sibling ``<path>.old-<time>``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = Path(f"{path}.old-{stamp}")
    n = 1
    while aside.exists():
        aside, n = Path(f"{path}.old-{stamp}-{n}"), n + 1
    aside.mkdir()
    for p in path.iterdir():
        if not p.name.startswith(keep):
            os.replace(p, aside / p.name)
    return aside


def visible_files(path: Path) -> list[str]:
    """Names in ``path`` that jfv's own hidden files (locks, temporaries) do not account for."""
    return sorted(p.name for p in path.iterdir() if not p.name.startswith((".jfv", STAGING_PREFIX)))


def remove_stale(path: Path) -> list[str]:
    """Removes temporary files and staging folders that killed runs left (call holding the lock)."""
    removed = []
    for p in list(path.rglob(STAGING_PREFIX + "*")):
        if p.name.startswith(".jfv.lock") or not p.exists():
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        removed.append(str(p.relative_to(path)))
    return removed


def claim(workdir: str | os.PathLike, *, overwrite: bool = False) -> WorkdirLock:
    """A one-shot run's hold on its workdir: locked; refused if it holds another run or anyone's
    files, unless ``overwrite``, which moves them to ``<workdir>.old-<time>`` first; stale
    temporaries of killed runs removed. Close the returned lock when the run ends."""
    path = check_workdir(workdir)
    lock = WorkdirLock(path)
    try:
        existing = visible_files(path)
        if existing and not overwrite:
            shown = ", ".join(existing[:4]) + (" ..." if len(existing) > 4 else "")
            raise WorkdirError(
                f"workdir {path} already holds files ({shown}); use a new --workdir, or --overwrite to move "
                f"them to {path}.old-<time> first")
        if existing:
            move_aside(path)
        remove_stale(path)
    except BaseException:
        lock.close()
        raise
    return lock


class Job:
    """A long job's hold on its workdir (see the module docstring for the policy).

    Args:
        workdir: the folder (created if needed).
        recipe: the recipe's name, stored in ``job.json``.
        settings: every setting that changes a result (JSON-serialisable).
        resume: False starts over after moving the earlier outputs aside.
        process_index: this process among those of a distributed job; only process 0 writes
            ``job.json`` (call ``create`` there, then ``attach`` on the others).
        process_count: the number of processes of the job.
        fixes: how messages name the two ways out, ``{"resume": ..., "discard_state": ...}``; by
            default this class's own arguments (``resume=False``, ``load_state(..., discard=True)``).
            Recipes pass their config keys (``jfv.recipes.common.JOB_FIXES``).
    """

    def __init__(self, workdir: str | os.PathLike, recipe: str, settings: Mapping[str, Any], *, resume: bool = True,
                 process_index: int = 0, process_count: int = 1, fixes: Mapping[str, str] | None = None,
                 absent: Mapping[str, Any] | None = None):
        self.fixes = {**FIXES, **(fixes or {})}
        self.absent = dict(absent or {})  # diff_settings' ``absent``: what a key a job.json lacks meant
        self.path = check_workdir(workdir)
        self.recipe, self.settings = recipe, json.loads(json.dumps(dict(settings)))
        self.process_index, self.process_count = process_index, process_count
        self.resume = resume
        self.resumed = False
        self._lock()

    # -- ownership -------------------------------------------------------------------------------

    def _lock(self) -> None:
        name = ".jfv.lock" if self.process_count == 1 else f".jfv.lock.{self.process_index}"
        self._held = WorkdirLock(self.path, name)

    def close(self) -> None:
        """Releases the lock (also released by the kernel when the process ends)."""
        self._held.close()

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _identity(self) -> dict:
        return {"recipe": self.recipe, "jfv_version": version(), "settings": self.settings}

    def create(self) -> None:
        """Claims the workdir for this job: resumes, refuses, or (resume=False) moves old outputs aside."""
        job_file = self.path / JOB_FILE
        if job_file.exists():
            try:
                old = json.loads(job_file.read_text())
            except (OSError, ValueError):
                raise ResumeError(f"{job_file} is unreadable; use another --workdir (jfv does not overwrite it)") from None
            same = old == self._identity()
            if not same and old.get("recipe") == self.recipe and old.get("jfv_version") == version():
                same = not diff_settings(old.get("settings", {}), self.settings, self.absent)
            if same and self.resume:
                self.resumed = True
                if old != self._identity():  # keys added since, at the values their absence meant
                    atomic_write(job_file, (json.dumps(self._identity(), indent=2) + "\n").encode())
                return
            if not same and self.resume:
                raise ResumeError(self._mismatch(old))
            self._move_aside()
        elif visible_files(self.path):
            raise ResumeError(
                f"workdir {self.path} already holds files that no resumable jfv job wrote "
                f"({', '.join(visible_files(self.path)[:3])}); use a new --workdir")
        atomic_write(job_file, (json.dumps(self._identity(), indent=2) + "\n").encode())

    def start(self) -> None:
        """Claims the workdir on every process of the job: process 0 ``create``s (resumes, refuses or
        moves old outputs aside) while the others wait at a barrier, then ``attach``; one process also
        removes what killed runs left (``clean_stale``)."""
        from jfv.runtime.distributed import barrier

        if self.process_index == 0:
            self.create()
        barrier(f"jfv-{self.recipe}-created", self.process_count)
        if self.process_index != 0:
            self.attach()
        if self.process_count == 1:
            self.clean_stale()

    def attach(self) -> None:
        """On processes other than 0: checks the ``job.json`` process 0 wrote."""
        job_file = self.path / JOB_FILE
        old = json.loads(job_file.read_text()) if job_file.exists() else None
        if old != self._identity():
            raise ResumeError(f"process {self.process_index} sees another job in {self.path}: every process "
                              f"must run the same config on the same shared workdir")
        self.resumed = True

    def _mismatch(self, old: dict) -> str:
        fix = (f"use a new --workdir, or {self.fixes['resume']} to start over (the earlier outputs are moved "
               f"to {self.path}.old-<time> first)")
        if old.get("recipe") != self.recipe:
            return f"workdir {self.path} holds a {old.get('recipe')!r} job, not {self.recipe!r}: {fix}"
        if old.get("jfv_version") != version():
            return (f"workdir {self.path} was written by jfv {old.get('jfv_version')}, this is jfv {version()}: "
                    f"{fix}")
        keys = diff_settings(old.get("settings", {}), self.settings, self.absent)
        shown = ", ".join(f"{k} ({old.get('settings', {}).get(k, '<absent>')!r} -> {self.settings.get(k, '<absent>')!r})"
                          for k in keys[:6])
        return f"workdir {self.path} holds a job with other settings: {shown}{' ...' if len(keys) > 6 else ''}; {fix}"

    def _move_aside(self) -> None:
        move_aside(self.path, keep=(".jfv.lock",))

    # -- finished pieces -------------------------------------------------------------------------

    def record_path(self, piece: str) -> Path:
        return self.path / RECORDS / f"{piece}.json"

    def is_done(self, piece: str) -> bool:
        return self.record_path(piece).exists()

    def records(self) -> list[dict]:
        """Every finished piece's record, in name order."""
        folder = self.path / RECORDS
        if not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def write_bytes(self, relative: str, data: bytes) -> None:
        atomic_write(self.path / relative, data)

    def write_text(self, relative: str, text: str) -> None:
        self.write_bytes(relative, text.encode())

    def write_json(self, relative: str, obj: Any) -> None:
        self.write_text(relative, json.dumps(obj, indent=2) + "\n")

    def save_png(self, relative: str, image: Any) -> None:
        self.write_bytes(relative, png_bytes(image))

    def finish(self, piece: str, record: Mapping[str, Any]) -> None:
        """Marks a piece finished (after its files are written) and drops its in-flight state."""
        self.write_json(f"{RECORDS}/{piece}.json", dict(record, piece=piece))
        self.drop_state(piece)

    # -- in-flight state -------------------------------------------------------------------------

    def state_path(self, piece: str) -> Path:
        return self.path / STATE / f"{piece}.npz"

    def save_state(self, piece: str, tree: Mapping[str, Any]) -> None:
        """Checkpoints ``tree`` (a flat dict of numpy arrays), replacing the last one atomically.

        A ``.npz`` through a temporary file and one rename: each process of a distributed job saves
        its own group with no coordination (orbax's multi-process checkpoints are one global
        checkpoint written by a primary host, which is not this)."""
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in tree.items()})
        atomic_write(self.state_path(piece), buf.getvalue())

    def load_state(self, piece: str, *, discard: bool = False) -> dict | None:
        """The piece's last checkpoint as a dict of numpy arrays, or None if there is none."""
        path = self.state_path(piece)
        if not path.exists():
            return None
        if discard:
            self.drop_state(piece)
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except Exception:  # zipfile, zlib, numpy and OS errors for a damaged file
            raise StateError(
                f"the in-flight checkpoint {path} is corrupt or truncated; re-run with {self.fixes['discard_state']} "
                f"to render that group again from the start (finished channels are kept)") from None

    def drop_state(self, piece: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_path(piece).unlink()

    def clean_stale(self) -> list[str]:
        """Removes temporaries that killed runs of this job left (single-process jobs hold the only lock)."""
        return remove_stale(self.path)


class StopFlag:
    """Turns SIGTERM and SIGINT into a flag checked between chunks; a second signal exits at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: stop now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signum = signum

    def __enter__(self) -> "StopFlag":
        for s in self.SIGNALS:
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)

    @property
    def stop(self) -> bool:
        return self.signum is not None

    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


__all__ = ["Interrupted", "Job", "ResumeError", "StateError", "StopFlag", "WorkdirLock", "atomic_write", "claim", "claimable",
           "diff_settings", "move_aside", "png_bytes", "remove_stale", "visible_files"]
