"""A daily LLM token budget, persisted per UTC day in a small SQLite file.

Shared by every process that points at the same file (the bot, `python -m bot ask`, shards):
each `record` is one atomic UPSERT, so concurrent writers never lose tokens. When the file
cannot be read the budget fails closed (`allow()` is False): the answer is then extractive,
which costs nothing, rather than unbounded.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_DAYS = 31  # older rows are pruned on write: the file stays tiny
BUSY_TIMEOUT_S = 30.0
RECORD_ATTEMPTS = 3  # a record is retried when the file stays locked past the busy timeout

_SCHEMA = "CREATE TABLE IF NOT EXISTS usage (day TEXT PRIMARY KEY, tokens INTEGER NOT NULL)"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DailyTokenBudget:
    """`allow()` while today's recorded tokens are below `limit`; `limit=0` means unlimited."""

    def __init__(
        self, *, limit: int, path: Path | str, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0 (0 = unlimited)")
        self.limit = limit
        self.path = Path(path)
        self._clock = clock

    def _today(self) -> str:
        return self._clock().astimezone(UTC).date().isoformat()

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: safe across threads and processes, and cheap at this rate.
        # WAL lets readers (allow) and the writer (record) proceed together; a generous busy
        # timeout rides out a loaded machine instead of dropping a record.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def used(self) -> int:
        """Tokens recorded today (UTC)."""
        db = self._connect()
        try:
            row = db.execute("SELECT tokens FROM usage WHERE day=?", (self._today(),)).fetchone()
        finally:
            db.close()
        return int(row[0]) if row else 0

    def remaining(self) -> int | None:
        """Tokens left today, or None when unlimited."""
        return None if self.limit == 0 else max(0, self.limit - self.used())

    def allow(self) -> bool:
        if self.limit == 0:
            return True
        try:
            return self.used() < self.limit
        except sqlite3.Error as err:
            log.warning("token budget file %s unreadable (%s); not calling the LLM", self.path, err)
            return False

    def record(self, tokens: int) -> None:
        """Add `tokens` (prompt + completion) to today's usage."""
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if tokens == 0:
            return
        today = self._clock().astimezone(UTC).date()
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                db = self._connect()
                try:
                    db.execute(
                        "INSERT INTO usage (day, tokens) VALUES (?, ?)"
                        " ON CONFLICT (day) DO UPDATE SET tokens = tokens + excluded.tokens",
                        (today.isoformat(), tokens),
                    )
                    cutoff = (today - timedelta(days=KEEP_DAYS)).isoformat()
                    db.execute("DELETE FROM usage WHERE day < ?", (cutoff,))
                finally:
                    db.close()
                return
            except sqlite3.OperationalError as err:
                if "locked" in str(err) or "busy" in str(err):
                    if attempt < RECORD_ATTEMPTS:
                        continue
                log.warning("could not record %d tokens in %s: %s", tokens, self.path, err)
                return
            except sqlite3.Error as err:
                log.warning("could not record %d tokens in %s: %s", tokens, self.path, err)
                return
