"""Builds the docs site: ``python -m jfv.runtime.docs [-d SITE_DIR]``, that is
``mkdocs build --strict`` on the checkout's ``mkdocs.yml`` (offline; ``site/`` by default).

Strict: a broken link or cross-reference, or a docstring that does not parse, fails the build
(exit 1, MkDocs' own status and messages). Without the ``docs`` extra (mkdocs, mkdocstrings) it
prints one line naming it and exits 2; further arguments go to ``mkdocs build`` as they are.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from jfv.runtime import errors

CONFIG = Path(__file__).resolve().parents[2] / "mkdocs.yml"  # the repository root of an editable install
EXTRA = "install the docs extra: pip install -e '.[docs]'"


class DocsError(errors.UserError):
    """The docs cannot be built here; the message names the fix."""


def build(argv: list[str]) -> int:
    """Runs ``mkdocs build --strict -f <checkout>/mkdocs.yml *argv``; returns its exit status.

    Args:
        argv: more ``mkdocs build`` arguments, e.g. ``["-d", "/tmp/site"]`` (a relative site
            folder is the caller's, not ``mkdocs.yml``'s).

    Raises:
        DocsError: the docs extra is not installed, or there is no ``mkdocs.yml`` (not a checkout).
    """
    for name in ("mkdocs.commands.build", "mkdocstrings", "mkdocstrings_handlers.python"):  # the docs extra
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise DocsError(f"{EXTRA} ({(e.name or name).split('.')[0]} is missing)") from None
    if not CONFIG.is_file():
        raise DocsError(f"no {CONFIG}: build the docs from a checkout of the repository (pip install -e '.[docs]')")
    # MkDocs reads a relative --site-dir against mkdocs.yml's folder; the caller means their own
    args = [str(Path(a).resolve()) if i and argv[i - 1] in ("-d", "--site-dir") else a for i, a in enumerate(argv)]
    return subprocess.call([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(CONFIG), *args])


if __name__ == "__main__":
    sys.exit(errors.report("jfv.runtime.docs", build, sys.argv[1:]))
