"""jfv.runtime.errors: how entry points end: a user error is one line and exit 2, an OS error names the
path, an unexpected one keeps its traceback, Ctrl-C is one line and 130 and is remembered."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jfv.runtime import errors

REPO = Path(__file__).resolve().parents[2]


def test_report_returns_the_status_and_prints_a_user_error_as_one_line(capsys, monkeypatch):
    monkeypatch.delenv("JFV_DEBUG", raising=False)
    assert errors.report("jfv", lambda: None) == 0
    assert errors.report("jfv", lambda x: x, 3) == 3

    def bad():
        raise ValueError("image_size must be >= 1, got 0")

    assert errors.report("jfv", bad) == errors.EXIT_ERROR == 2
    assert capsys.readouterr().err == "jfv: error: image_size must be >= 1, got 0\n"


def test_messages_of_key_and_os_errors():
    assert errors.message(KeyError("unknown layer 'x'")) == "unknown layer 'x'"  # no quotes around it
    e = OSError(errno.ENOSPC, "No space left on device", "/tmp/w/a.png")
    assert errors.message(e) == ("No space left on device (/tmp/w/a.png): check the path, its permissions and "
                                 "the free disk space")
    assert errors.message(ValueError("plain")) == "plain"


def test_an_unexpected_error_keeps_its_traceback_and_debug_reraises_user_errors(monkeypatch):
    def bug():
        raise ZeroDivisionError("a jfv bug")

    with pytest.raises(ZeroDivisionError):
        errors.report("jfv", bug)
    monkeypatch.setenv("JFV_DEBUG", "1")
    with pytest.raises(ValueError, match="fix"):
        errors.report("jfv", lambda: (_ for _ in ()).throw(ValueError("fix")))


def test_tasks_a_failed_save_leaves_behind_print_no_traceback():
    """A full disk fails several of orbax's concurrent write tasks; the save raises one error and
    asyncio logs the rest ("Task exception was never retrieved") when they are collected. After the
    one-line report, those logs stay quiet (here the abandoned task is made by hand, with absl's
    logging set up as in the command lines)."""
    script = (
        "import asyncio, gc, sys\n"
        "from absl import flags, logging as absl_logging\n"
        "flags.FLAGS(['jfv.weights'])\n"
        "absl_logging.use_absl_handler()\n"
        "from jfv.runtime import errors\n"
        "async def write():\n"
        "    raise ValueError('OUT_OF_RANGE: Failed writing: File too large')\n"
        "def save():\n"
        "    loop = asyncio.new_event_loop()\n"
        "    task = loop.create_task(write())  # alive until the error is handled, as in orbax\n"
        "    loop.run_until_complete(asyncio.sleep(0.01))\n"
        "    loop.close()\n"
        "    raise OSError('cannot write weights to /w/alexnet (File too large); free some space')\n"
        "status = errors.report('jfv.weights', save)\n"
        "gc.collect()\n"
        "sys.exit(status)\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr == "jfv.weights: error: cannot write weights to /w/alexnet (File too large); free some space\n"


def test_keyboard_interrupt_is_one_line_and_130(capsys):
    def ctrl_c():
        raise KeyboardInterrupt

    assert errors.report("jfv", ctrl_c) == errors.EXIT_INTERRUPTED == 128 + 2  # 128 + SIGINT
    assert capsys.readouterr().err == "jfv: interrupted\n"


CTRL_C = r"""
import signal, threading, time
from jfv import errors
errors.catch_ctrl_c()
try:
    # to the main thread itself: a process-wide kill may land on one of jax's threads, and the
    # main thread then runs the handler only at some later bytecode
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    for _ in range(1000):
        time.sleep(0.01)  # the handler runs as the first of these returns
    print("not interrupted")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
try:
    errors.raise_if_interrupted()  # the flag survives a KeyboardInterrupt that was swallowed
    print("flag lost")
except KeyboardInterrupt:
    print("flag kept")
"""


def test_ctrl_c_is_remembered_for_the_loops_to_stop_at():
    # SIGINT at its default in the child, as under a terminal: a test run started in the background
    # (`cmd &` in a script) passes SIGINT on ignored, and jfv rightly leaves an ignored SIGINT alone
    res = subprocess.run([sys.executable, "-c", CTRL_C], cwd=REPO, capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert res.stdout.split() == ["KeyboardInterrupt", "flag", "kept"], res.stdout + res.stderr[-2000:]
