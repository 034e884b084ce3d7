"""How the command-line entry points end: one line on stderr and an exit status, never a traceback.

Exit statuses of ``python -m jfv``, ``python -m jfv.convert`` and ``python -m jfv.weights``:

- 0: done.
- 2: something the user must fix: a bad flag, config or value, a file jfv cannot read, a folder in
  the way, a full or read-only disk. The message names the fix.
- 130: interrupted (Ctrl-C), as shells report 128 + SIGINT.
- 1: an unexpected failure, a jfv bug; its traceback is printed.

``JFV_DEBUG=1`` re-raises user errors too, with their traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT


class UsageError(ValueError):
    """A command line that cannot run: a missing flag, a stray argument; the message names the fix."""


class UserError(Exception):
    """Base of errors that are not ``ValueError``s but still the user's to fix (``WeightsError``)."""


def user_errors() -> tuple[type[BaseException], ...]:
    return (ValueError, KeyError, UserError, OSError)


def message(e: BaseException) -> str:
    """The one line to print for a user error."""
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    if isinstance(e, OSError) and e.errno is not None and e.strerror:  # raw OS errors: no fix in them
        where = f" ({e.filename})" if e.filename else ""
        return f"{e.strerror}{where}: check the path, its permissions and the free disk space"
    return str(e)


def report(prog: str, fn: Callable[..., Any], *args: Any) -> int:
    """Runs ``fn(*args)``; returns its exit status, or prints a user error or Ctrl-C as one line."""
    try:
        return fn(*args) or 0
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) or (_interrupt.is_set() and isinstance(e, Exception)):
            # Ctrl-C, or an error a library made of the KeyboardInterrupt that cut into it (an
            # extension module's import fails with ImportError). The run's own cleanup has run as
            # the exception came up; under ``catch_ctrl_c`` the process ends here, before unwinding
            # frees half-built library objects whose finalisers would print tracebacks of their own.
            print(f"{prog}: interrupted", file=sys.stderr)
            if _interrupt.is_set():
                finish(EXIT_INTERRUPTED)
            return EXIT_INTERRUPTED
        if not isinstance(e, user_errors()) or os.environ.get("JFV_DEBUG"):
            raise
        print(f"{prog}: error: {message(e)}", file=sys.stderr)
        from jfv.runtime import distributed

        distributed.announce_failure(message(e))  # the other processes of a distributed job stop too
        _quiet_abandoned_tasks()
        return EXIT_ERROR


def _quiet_abandoned_tasks() -> None:
    """After a reported error, keeps asyncio from logging the tasks the failure left behind.

    Orbax writes a checkpoint's arrays in concurrent asyncio tasks. When the disk fills, several of
    them fail; the save raises the first error (reported above as one line) and the others are
    logged with their tracebacks as "Task exception was never retrieved" whenever the garbage
    collector reaches them, often at exit. They say nothing the one line has not said."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)


def flags_parser(prog: str) -> Callable[[list[str]], list[str]]:
    """absl flag parsing that reports a bad flag as one line and exit status 2 (not absl's usage dump)."""
    from absl import flags

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            sys.exit(EXIT_ERROR)

    return parse


def finish(status: int) -> None:
    """Ends the process with ``status``. After an interrupt (status >= 128) it skips interpreter
    teardown: XLA's threads may still be compiling or running the program the signal cut short, and
    tearing Python down under them can crash the process (a segfault instead of the promised status).
    Everything the run must keep is already on disk by then (staging removed, checkpoints written)."""
    if status >= 128:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


_interrupt = threading.Event()  # set by a Ctrl-C, whether or not its KeyboardInterrupt got through


def _on_ctrl_c(signum, frame) -> None:
    """The command lines' SIGINT handler: Python's own (``KeyboardInterrupt``), remembered.

    Inside a garbage-collector callback (jax registers one) an exception cannot propagate: Python
    prints it as "Exception ignored" and carries on. There it only sets the flag, and the loop
    stops at its next ``raise_if_interrupted``."""
    import gc

    _interrupt.set()
    if frame is not None and any(getattr(cb, "__code__", None) is frame.f_code for cb in gc.callbacks):
        return
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raises ``KeyboardInterrupt`` if Ctrl-C was pressed; long loops call it at their safe points.

    The interpreter raises ``KeyboardInterrupt`` at whatever bytecode the main thread runs next, and
    now and then that is where it cannot propagate: in jax's garbage-collector callback a render was
    seen to run on at full speed after Ctrl-C, about once in thirty tries. A loop that checks here
    after each unit of work stops for certain, at a point where nothing is half-written. Outside
    the command lines (a notebook) nothing sets the flag.
    """
    if _interrupt.is_set():
        raise KeyboardInterrupt


def catch_ctrl_c() -> None:
    """Installs ``_on_ctrl_c`` as the SIGINT handler, if SIGINT still has Python's default one.

    Only the command-line entry points call it: importing jfv changes no signal state. Jobs that
    checkpoint on a signal (``jobs.StopFlag``) install their own handler for their duration."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_ctrl_c)


def run_app(prog: str, main: Callable[[list[str]], int], parser: Callable[[list[str]], list[str]] | None = None) -> None:
    """``absl.app.run(main)``, with Ctrl-C during flag parsing or start-up reported as one line."""
    catch_ctrl_c()
    from absl import app

    try:
        app.run(lambda argv: finish(main(argv)), flags_parser=parser or flags_parser(prog))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        finish(EXIT_INTERRUPTED)
