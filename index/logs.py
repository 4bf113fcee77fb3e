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


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not the stream of the
    moment logging was set up (tests capture and close streams; tqdm wraps them)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - the logging API's attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


# Libraries whose INFO lines are per-request noise (one line per HTTP call).
_QUIET = ("httpx", "httpcore", "chromadb.telemetry")


def configure_logging(level: str | int) -> None:
    """Log `level` (a level name, any case, or number) and above to stderr; replaces any
    earlier set-up, so calling it twice is fine."""
    if isinstance(level, str):
        level = level.strip().upper()
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def package_version() -> str:
    """The installed corpusbot version (for `--version`)."""
    try:
        return _dist_version("corpusbot")
    except PackageNotFoundError:  # a checkout used without `pip install`
        return "unknown (not installed)"
