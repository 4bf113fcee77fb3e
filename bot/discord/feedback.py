"""Answers, 👍/👎 votes and thread history in SQLite.

Blocking: async callers go through `asyncio.to_thread`. One connection guarded by a lock
(WAL, so a reader such as a stats query never waits on the writer at the file level).
Users are stored as sha256(per-install salt + user id), never as raw ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from bot.models import Answer

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    guild_id INTEGER,
    channel_id INTEGER NOT NULL,
    user_hash TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    mode TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_channel ON answers (channel_id, id);
CREATE TABLE IF NOT EXISTS votes (
    answer_id INTEGER NOT NULL REFERENCES answers (id) ON DELETE CASCADE,
    user_hash TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    created_at REAL NOT NULL,
    PRIMARY KEY (answer_id, user_hash)
);
CREATE TABLE IF NOT EXISTS answer_messages (
    message_id INTEGER PRIMARY KEY,
    answer_id INTEGER NOT NULL REFERENCES answers (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS forum_posts (
    thread_id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,  -- pending, answer, notice, silent
    owner TEXT NOT NULL,  -- the bot process that claimed it
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS handoffs (
    answer_id INTEGER PRIMARY KEY REFERENCES answers (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class FeedbackStore:
    def __init__(self, *, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('salt', ?)",
                (secrets.token_hex(16),),
            )
            self._salt = self._db.execute("SELECT value FROM meta WHERE key='salt'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def user_hash(self, user_id: int) -> str:
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- writes ------------------------------------------------------------------------

    def record_answer(
        self, *, answer: Answer, user_id: int, channel_id: int, guild_id: int | None
    ) -> int:
        """Store one Q/A; returns its id (used in the feedback buttons' custom_id)."""
        citations = json.dumps([c.to_dict() for c in answer.citations], ensure_ascii=False)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO answers (created_at, guild_id, channel_id, user_hash, question,"
                " answer, citations, abstained, mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    guild_id,
                    channel_id,
                    self.user_hash(user_id),
                    answer.question,
                    answer.text,
                    citations,
                    int(answer.abstained),
                    answer.mode,
                ),
            )
            return int(cur.lastrowid)

    def record_messages(self, answer_id: int, message_ids: list[int]) -> None:
        """Remember which Discord messages carry an answer (replies to them are follow-ups)."""
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO answer_messages (message_id, answer_id) VALUES (?, ?)",
                [(m, answer_id) for m in message_ids],
            )

    def record_vote(self, *, answer_id: int, user_id: int, vote: int) -> bool:
        """One vote per user per answer; clicking again changes it. False if no such answer."""
        if vote not in (1, -1):
            raise ValueError("vote must be +1 or -1")
        with self._lock:
            if not self._db.execute("SELECT 1 FROM answers WHERE id=?", (answer_id,)).fetchone():
                return False
            self._db.execute(
                "INSERT INTO votes (answer_id, user_hash, vote, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (answer_id, user_hash) DO UPDATE"
                " SET vote=excluded.vote, created_at=excluded.created_at",
                (answer_id, self.user_hash(user_id), vote, time.time()),
            )
            return True

    # --- forum posts (answered once, also across restarts) ------------------------------

    def claim_post(self, thread_id: int, owner: str) -> bool:
        """Claim a forum post for answering; False if it was ever claimed before."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO forum_posts (thread_id, status, owner, updated_at)"
                " VALUES (?, 'pending', ?, ?)",
                (thread_id, owner, time.time()),
            )
            return cur.rowcount == 1

    def take_over_post(self, thread_id: int, owner: str) -> bool:
        """Claim a post another (dead) process left pending; the caller checked it has no reply."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE forum_posts SET owner=?, updated_at=?"
                " WHERE thread_id=? AND status='pending' AND owner != ?",
                (owner, time.time(), thread_id, owner),
            )
            return cur.rowcount == 1

    def finish_post(self, thread_id: int, status: str, owner: str) -> None:
        """Record how a claimed post ended (only by its owner: a taken-over one is not ours)."""
        with self._lock:
            self._db.execute(
                "UPDATE forum_posts SET status=?, updated_at=? WHERE thread_id=? AND owner=?",
                (status, time.time(), thread_id, owner),
            )

    def post_status(self, thread_id: int) -> tuple[str, str] | None:
        """(status, owner) of a forum post, None if never claimed."""
        rows = self._run("SELECT status, owner FROM forum_posts WHERE thread_id=?", (thread_id,))
        return rows[0] if rows else None

    def watch_since_ms(self, now_ms: int) -> int:
        """When the bot first watched forums (set once): catch-up never goes further back."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('forum_watch_since_ms', ?)",
                (str(now_ms),),
            )
            row = self._db.execute(
                "SELECT value FROM meta WHERE key='forum_watch_since_ms'"
            ).fetchone()
            return int(row[0])

    # --- hand-offs to humans -----------------------------------------------------------

    def handoff_url(self, answer_id: int) -> str | None:
        rows = self._run("SELECT url FROM handoffs WHERE answer_id=?", (answer_id,))
        return rows[0][0] if rows else None

    def record_handoff(self, answer_id: int, url: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO handoffs (answer_id, url, created_at) VALUES (?, ?, ?)",
                (answer_id, url, time.time()),
            )

    # --- reads -------------------------------------------------------------------------

    def answer_record(self, answer_id: int) -> dict[str, Any] | None:
        """One stored answer: question, answer, abstained, channel_id, guild_id and message_id
        (its first Discord message, None if unknown)."""
        rows = self._run(
            "SELECT question, answer, abstained, channel_id, guild_id,"
            " (SELECT MIN(message_id) FROM answer_messages WHERE answer_id = answers.id)"
            " FROM answers WHERE id=?",
            (answer_id,),
        )
        if not rows:
            return None
        q, a, abstained, channel_id, guild_id, message_id = rows[0]
        return {
            "question": q,
            "answer": a,
            "abstained": bool(abstained),
            "channel_id": channel_id,
            "guild_id": guild_id,
            "message_id": message_id,
        }

    def history(self, channel_id: int, *, limit: int = 5) -> list[tuple[str, str]]:
        """The last `limit` (question, answer) pairs in a thread/channel, oldest first."""
        rows = self._run(
            "SELECT question, answer FROM answers WHERE channel_id=? ORDER BY id DESC LIMIT ?",
            (channel_id, limit),
        )
        return [(q, a) for q, a in reversed(rows)]

    def has_answered_in(self, channel_id: int) -> bool:
        return bool(self._run("SELECT 1 FROM answers WHERE channel_id=? LIMIT 1", (channel_id,)))

    def answer_for_message(self, message_id: int) -> tuple[str, str] | None:
        """The (question, answer) a bot message carries, if it is one of ours."""
        rows = self._run(
            "SELECT a.question, a.answer FROM answer_messages m JOIN answers a"
            " ON a.id = m.answer_id WHERE m.message_id=?",
            (message_id,),
        )
        return rows[0] if rows else None

    def votes(self, answer_id: int) -> dict[str, int]:
        rows = self._run(
            "SELECT vote, COUNT(*) FROM votes WHERE answer_id=? GROUP BY vote", (answer_id,)
        )
        counts = dict(rows)
        return {"up": counts.get(1, 0), "down": counts.get(-1, 0)}

    def stats(self, *, recent: int = 10) -> dict[str, Any]:
        ((answered, declined),) = self._run(
            "SELECT COALESCE(SUM(abstained = 0), 0), COALESCE(SUM(abstained = 1), 0) FROM answers"
        )
        ((up, down),) = self._run(
            "SELECT COALESCE(SUM(vote = 1), 0), COALESCE(SUM(vote = -1), 0) FROM votes"
        )
        gaps = self._run(
            "SELECT question, created_at FROM answers WHERE abstained = 1 ORDER BY id DESC LIMIT ?",
            (recent,),
        )
        return {
            "answered": answered,
            "declined": declined,
            "upvotes": up,
            "downvotes": down,
            "ratio": round(up / (up + down), 3) if up + down else None,
            "recent_unanswered": [{"question": q, "created_at": t} for q, t in gaps],
        }
