"""The one logging set-up of both CLIs (`python -m bot`, `python -m index`).

Both write to stderr in the same format, so a maintainer reading a cron mail, a systemd
journal or a terminal sees the same lines. The index progress bar is kept apart from log
lines by `tqdm.contrib.logging.logging_redirect_tqdm` in index/pipeline.py.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def configure_logging(level: str | int) -> None:
    """Log `level` (a level name, any case, or number) and above to stderr; replaces any
    earlier set-up, so calling it twice is fine."""
    if isinstance(level, str):
        level = level.strip().upper()
    logging.basicConfig(
        level=level, stream=sys.stderr, format=LOG_FORMAT, datefmt=DATE_FORMAT, force=True
    )


def package_version() -> str:
    """The installed corpusbot version (for `--version`)."""
    try:
        return _dist_version("corpusbot")
    except PackageNotFoundError:  # a checkout used without `pip install`
        return "unknown (not installed)"
