"""``python -m jfv.models build|convert|verify ...``: see ``jfv.models.cli``."""

from jfv.models import cli

if __name__ == "__main__":
    cli.run()
