"""The command line: ``python -m jfv --config=configs/vgg16_channels.py --workdir=DIR``.

The only module with flags. The config file (ml_collections, locked) names the recipe; any key can be
overridden, e.g. ``--config.layer=conv5_1 --config.channels=0:64``. Bad input (unknown model, layer,
config key or value; unwritable workdir; corrupt weights) prints one line naming the fix and exits
with status 2, leaving no half-written files in the workdir.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the run's outputs (created if needed).")

EXIT_USAGE = 2


def _user_errors() -> tuple[type[BaseException], ...]:
    from jfv.models.weights import WeightsError
    from jfv.outputs import WorkdirError

    return (ValueError, KeyError, WeightsError, WorkdirError)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required, e.g. --config=configs/vgg16_channels.py")
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required, e.g. --workdir=/tmp/jfv_run")
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint read at INFO
    from jfv import recipes

    try:
        recipe = recipes.get(_CONFIG.value.recipe)
        manifest = recipe.run(_CONFIG.value, _WORKDIR.value)
    except _user_errors() as e:
        if os.environ.get("JFV_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"jfv: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    print(f"jfv: wrote {os.path.join(_WORKDIR.value, manifest.get('gallery', 'manifest.json'))}")
    return 0


def _config_keys(argv: list[str]) -> list[str]:
    """The keys the --config file declares (for the error message), or [] if it cannot be read."""
    import importlib.util

    path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if not path:
        return []
    try:
        spec = importlib.util.spec_from_file_location("_jfv_config", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return sorted(module.get_config().keys())
    except Exception:
        return []


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with config-override errors reported as one line and exit status 2."""
    try:
        return flags.FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        msg = " ".join(str(e).replace("\\n", " ").replace("\\'", "'").split())
        keys = _config_keys(argv)
        hint = f" Valid config keys: {', '.join(keys)}" if keys else ""
        print(f"jfv: error: bad flag or config override: {msg}{hint}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def run() -> None:
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
