"""jfv's version: one place, read by the package (``jfv.__version__``) and by jobs (``job.json``)."""

__version__ = "0.1.0"
