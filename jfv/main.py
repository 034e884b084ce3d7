"""The command line: ``python -m jfv --config=configs/vgg16_channels.py --workdir=DIR``.

The only module with flags. The config file (ml_collections, locked) names the recipe; any key can be
overridden, e.g. ``--config.layer=conv5_1 --config.channels=0:64``. Bad input (a config file that is
missing or not a config; unknown model, layer, config key or value; unwritable workdir; corrupt
weights) prints one line naming the fix and exits with status 2, leaving no half-written files in the
workdir; Ctrl-C exits with 130 (``jfv.runtime.errors``).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

from absl import flags, logging
from ml_collections import config_flags

from jfv.runtime import errors

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the run's outputs (created if needed).")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Move the files already in --workdir to <workdir>.old-<time> before the run "
    "(for a resumable recipe such as channels the same as --config.resume=False).")

PROG = "jfv"
EXIT_USAGE = errors.EXIT_ERROR
EXAMPLE = "--config=configs/vgg16_channels.py"


class ConfigFileError(ValueError):
    """A --config file that is missing or is not a jfv config; the message names the fix."""


def load_config(spec: str):
    """The ConfigDict that ``get_config()`` of the file ``spec`` (``PATH`` or ``PATH:ARG``) returns.

    Raises:
        ConfigFileError: the file is missing, does not compile, fails to run, defines no
            ``get_config()``, or its config names no ``recipe``.
    """
    from jfv.recipes import RECIPES

    path, _, arg = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise ConfigFileError(f"config file {path} {what}; pass a config .py file, e.g. {EXAMPLE}")
    try:
        code = compile(p.read_bytes(), str(p), "exec")
    except (SyntaxError, ValueError) as e:
        if getattr(e, "lineno", None) is None:  # null bytes or undecodable: not a text file
            raise ConfigFileError(f"{path} is not a config file (not Python text); pass one, e.g. {EXAMPLE}") from None
        raise ConfigFileError(
            f"config file {path} has a syntax error at line {e.lineno}: {e.msg}; a config is Python "
            f"defining get_config(), e.g. configs/vgg16_channels.py"
        ) from None
    module = types.ModuleType("_jfv_config")
    module.__file__ = str(p)
    try:
        exec(code, module.__dict__)
        get_config = getattr(module, "get_config", None)
        if not callable(get_config):
            raise ConfigFileError(
                f"{path} is not a jfv config file: it defines no get_config(); pass one like {EXAMPLE}"
            )
        config = get_config(arg) if arg else get_config()
    except ConfigFileError:
        raise
    except Exception as e:
        raise ConfigFileError(
            f"config file {path} fails to load ({type(e).__name__}: {e}); pass a config .py file "
            f"defining get_config(), e.g. {EXAMPLE}"
        ) from None
    if not hasattr(config, "keys") or "recipe" not in config:
        raise ConfigFileError(
            f"config file {path} names no recipe: set c.recipe in get_config() to one of "
            f"{', '.join(sorted(RECIPES))}, as configs/vgg16_channels.py does"
        )
    return config


def run_config(argv: list[str]) -> int:
    """Runs the recipe the parsed --config names into --workdir; raises user errors."""
    if len(argv) > 1:
        raise errors.UsageError(f"unexpected arguments: {' '.join(argv[1:])}; flags take the form --name=value")
    if _CONFIG.value is None:
        raise errors.UsageError(f"--config is required, e.g. {EXAMPLE}")
    if not _WORKDIR.value:
        raise errors.UsageError("--workdir is required, e.g. --workdir=/tmp/jfv_run")
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint read at INFO
    from jfv import recipes
    from jfv.runtime.jobs import Interrupted, claim

    from jfv.recipes.optvis.settings import check_preset_overrides

    recipe = recipes.recipe(_CONFIG.value.recipe)
    check_preset_overrides(_CONFIG.value, list(config_flags.get_override_values(flags.FLAGS["config"])))
    if recipe.check_workdir is not None:  # refusals that must come before the workdir is claimed (or moved aside)
        recipe.check_workdir(_CONFIG.value, _WORKDIR.value)
    try:
        if recipe.resumable:  # it keeps its own job.json, lock and resume policy
            if _OVERWRITE.value:  # as --config.resume=False: what DIR holds goes to DIR.old-<time> first
                claim(_WORKDIR.value, overwrite=True).close()
            manifest = recipe.run(_CONFIG.value, _WORKDIR.value)
        else:
            with claim(_WORKDIR.value, overwrite=_OVERWRITE.value):
                manifest = recipe.run(_CONFIG.value, _WORKDIR.value)
    except Interrupted as e:  # checkpointed already: one line, 128 + the signal (SIGTERM 143, SIGINT 130)
        print(f"{PROG}: interrupted by {e}", file=sys.stderr)
        return 128 + e.signum
    except OSError as e:
        if e.errno is None or e.filename:
            raise
        # writes through file objects (PNGs, JSON) report no path: they are writes into the workdir
        raise OSError(e.errno, e.strerror, _WORKDIR.value) from None
    print(f"jfv: wrote {os.path.join(_WORKDIR.value, manifest.get('gallery', 'manifest.json'))}")
    return 0


def main(argv: list[str]) -> int:
    """absl's main: the run, with user errors and Ctrl-C reported as one line (exit 2 / 130)."""
    return errors.report(PROG, run_config, argv)


def _flag_value(argv: list[str], name: str) -> str | None:
    """The value of ``--name=V`` or ``--name V`` in a raw command line, else None."""
    for i, a in enumerate(argv[1:], start=1):
        for dash in ("--", "-"):
            if a.startswith(f"{dash}{name}="):
                return a.split("=", 1)[1]
            if a == f"{dash}{name}" and i + 1 < len(argv):
                return argv[i + 1]
    return None


def _config_keys(argv: list[str]) -> list[str]:
    """The keys the --config file declares (for the error message), or [] if it cannot be read."""
    path = _flag_value(argv, "config")
    try:
        return sorted(load_config(path).keys()) if path else []
    except Exception:
        return []


HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-helpshort")


def usage(argv: list[str]) -> str:
    """The text of ``jfv --help``: the command's form, its flags and recipes, and with ``--config``
    that config's keys."""
    from jfv.recipes import RECIPES

    keys = _config_keys(argv)
    lines = [f"usage: {PROG} --config=configs/<name>.py --workdir=DIR [--config.<key>=<value> ...] [--overwrite]",
             "",
             "Runs the recipe that the config file names (configs/ holds one per job; docs/recipes.md lists them).",
             "  --config=PATH[:ARG]   a config file defining get_config()",
             "  --workdir=DIR         the run's output folder (created if needed; a resumable recipe resumes in it)",
             "  --config.KEY=VALUE    override any key of the config",
             "  --overwrite           move the files already in DIR to DIR.old-<time> first",
             "  --helpfull            every flag, absl's included",
             "",
             f"example: {PROG} {EXAMPLE} --workdir=runs/vgg16 --config.channels=0:8",
             f"recipes: {', '.join(sorted(RECIPES))}"]
    if keys:
        lines.append(f"keys of {_flag_value(argv, 'config')}: {', '.join(keys)}")
    else:
        lines.append("with --config, --help also lists that config's keys")
    return "\n".join(lines)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing; a bad config file, flag or override is one line and exit status 2.
    ``--help`` prints ``usage`` and ``--helpfull`` absl's list of flags, both with status 0."""
    if any(a in HELP_FLAGS for a in argv[1:]):
        print(usage(argv))
        sys.exit(0)
    if any(a in ("--helpfull", "-helpfull") for a in argv[1:]):
        try:
            flags.FLAGS(argv)
        except SystemExit:  # absl exits 1 after printing the flags; asking for help is no error
            sys.exit(0)
    path = _flag_value(argv, "config")
    try:
        if path is not None:
            load_config(path)
        return flags.FLAGS(argv)
    except ConfigFileError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        msg = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
        keys = _config_keys(argv)
        hint = f" Valid config keys: {', '.join(keys)}" if keys else ""
        print(f"{PROG}: error: bad flag or config override: {msg}{hint}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def run() -> None:
    errors.run_app(PROG, main, parse_flags)


if __name__ == "__main__":
    run()
