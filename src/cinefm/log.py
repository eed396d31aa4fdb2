"""Logging set-up shared by the CLI and the Snakemake scripts."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO,
                  append: bool = False) -> None:
    """Log to stderr with rich (when a terminal) and, if given, to ``log_file`` (truncated unless ``append``)."""
    handlers: list[logging.Handler] = []
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handlers.append(RichHandler(show_path=False, rich_tracebacks=True))
    else:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(h)
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        fh = logging.FileHandler(log_file, mode="a" if append else "w")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(fh)
    logging.basicConfig(level=level, handlers=handlers, force=True)
