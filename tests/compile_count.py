"""Counting XLA compilations (jax.log_compiles) for the no-recompilation tests."""

from __future__ import annotations

import logging

import jax


class CompileCounter(logging.Handler):
    def __init__(self):
        super().__init__()
        self.count = 0

    def emit(self, record):
        if "Compiling" in record.getMessage():
            self.count += 1


def compiles(fn) -> int:
    """How many programs XLA compiles while ``fn()`` runs."""
    counter = CompileCounter()
    logger = logging.getLogger("jax")
    logger.addHandler(counter)
    try:
        with jax.log_compiles(True):
            fn()
    finally:
        logger.removeHandler(counter)
    return counter.count
