"""FeedbackStore: answers, one vote per user, thread history, stats, hashed users."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from bot.discord.feedback import FeedbackStore
from bot.models import Answer, Citation


@pytest.fixture
def store(tmp_path):
    s = FeedbackStore(path=tmp_path / "fb" / "feedback.sqlite3")
    yield s
    s.close()


def answer(q: str, *, abstained: bool = False) -> Answer:
    cites = [Citation(n=1, title="T", source="t.md", quote="q")]
    return Answer(question=q, text=f"A to {q} [1]", citations=cites, abstained=abstained)


def test_votes_one_per_user_and_changeable(store):
    aid = store.record_answer(answer=answer("q1"), user_id=1, channel_id=10, guild_id=5)
    assert store.record_vote(answer_id=aid, user_id=2, vote=1)
    assert store.record_vote(answer_id=aid, user_id=2, vote=1)
    assert store.votes(aid) == {"up": 1, "down": 0}
    assert store.record_vote(answer_id=aid, user_id=2, vote=-1)  # re-click changes it
    assert store.record_vote(answer_id=aid, user_id=3, vote=-1)
    assert store.votes(aid) == {"up": 0, "down": 2}
    assert not store.record_vote(answer_id=aid + 99, user_id=2, vote=1)
    with pytest.raises(ValueError):
        store.record_vote(answer_id=aid, user_id=2, vote=0)


def test_history_per_channel_oldest_first(store):
    for i in range(7):
        store.record_answer(answer=answer(f"q{i}"), user_id=1, channel_id=10, guild_id=5)
    store.record_answer(answer=answer("other"), user_id=1, channel_id=11, guild_id=5)
    hist = store.history(10, limit=5)
    assert [q for q, _ in hist] == ["q2", "q3", "q4", "q5", "q6"]
    assert hist[-1][1] == "A to q6 [1]"
    assert store.has_answered_in(11) and not store.has_answered_in(12)


def test_answer_messages_map_replies(store):
    aid = store.record_answer(answer=answer("q"), user_id=1, channel_id=10, guild_id=None)
    store.record_messages(aid, [100, 101])
    assert store.answer_for_message(101) == ("q", "A to q [1]")
    assert store.answer_for_message(102) is None


def test_stats(store):
    a1 = store.record_answer(answer=answer("ok"), user_id=1, channel_id=10, guild_id=5)
    for i in range(12):
        store.record_answer(
            answer=answer(f"gap{i}", abstained=True), user_id=1, channel_id=10, guild_id=5
        )
    store.record_vote(answer_id=a1, user_id=1, vote=1)
    store.record_vote(answer_id=a1, user_id=2, vote=1)
    store.record_vote(answer_id=a1, user_id=3, vote=-1)
    stats = store.stats()
    assert stats["answered"] == 1 and stats["declined"] == 12
    assert (stats["upvotes"], stats["downvotes"], stats["ratio"]) == (2, 1, 0.667)
    gaps = [g["question"] for g in stats["recent_unanswered"]]
    assert gaps == [f"gap{i}" for i in range(11, 1, -1)]


def test_empty_stats(store):
    assert store.stats() == {
        "answered": 0,
        "declined": 0,
        "upvotes": 0,
        "downvotes": 0,
        "ratio": None,
        "recent_unanswered": [],
    }


def test_users_are_salted_hashes_and_salt_persists(tmp_path):
    path = tmp_path / "f.sqlite3"
    s1 = FeedbackStore(path=path)
    aid = s1.record_answer(answer=answer("q"), user_id=123456789, channel_id=1, guild_id=None)
    s1.record_vote(answer_id=aid, user_id=123456789, vote=1)
    h = s1.user_hash(123456789)
    s1.close()
    s2 = FeedbackStore(path=path)  # a restart keeps the same salt, so votes stay one per user
    assert s2.user_hash(123456789) == h
    s2.record_vote(answer_id=aid, user_id=123456789, vote=-1)
    assert s2.votes(aid) == {"up": 0, "down": 1}
    s2.close()
    other = FeedbackStore(path=tmp_path / "g.sqlite3")  # another install, another salt
    assert other.user_hash(123456789) != h
    other.close()
    raw = sqlite3.connect(path)
    dump = "\n".join(raw.iterdump())
    assert "123456789" not in dump
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_thread_safe_writes(store):
    aid = store.record_answer(answer=answer("q"), user_id=1, channel_id=10, guild_id=5)

    def work(k: int) -> None:
        for i in range(50):
            store.record_answer(
                answer=answer(f"t{k}-{i}"), user_id=k, channel_id=20 + k, guild_id=5
            )
            store.record_vote(answer_id=aid, user_id=1000 + k * 100 + i, vote=1)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.stats()["answered"] == 201 and store.votes(aid)["up"] == 200
