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
import sys
from typing import Any, Callable

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT


class UsageError(ValueError):
    """A command line that cannot run: a missing flag, a stray argument; the message names the fix."""


def user_errors() -> tuple[type[BaseException], ...]:
    from jfv.models.weights import WeightsError

    return (ValueError, KeyError, WeightsError, OSError)


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
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except user_errors() as e:
        if os.environ.get("JFV_DEBUG"):
            raise
        print(f"{prog}: error: {message(e)}", file=sys.stderr)
        return EXIT_ERROR


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


def run_app(prog: str, main: Callable[[list[str]], int], parser: Callable[[list[str]], list[str]] | None = None) -> None:
    """``absl.app.run(main)``, with Ctrl-C during flag parsing or start-up reported as one line."""
    from absl import app

    try:
        app.run(lambda argv: sys.exit(main(argv)), flags_parser=parser or flags_parser(prog))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
