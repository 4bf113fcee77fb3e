from __future__ import annotations

from langchain_core.documents import Document

from bot.sentences import (
    best_sentences,
    is_byline,
    relation,
    search_terms,
    split_sentences,
    stem,
    tokenize,
)
from index.settings import REPO_ROOT


def test_offsets_are_exact_on_the_seed_corpus():
    for path in sorted((REPO_ROOT / "corpus").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        sentences = split_sentences(text, base=0)
        assert len(sentences) > 10
        for s in sentences:
            assert text[s.start : s.end] == s.text
            assert s.text == s.text.strip()


def test_abbreviations_quotes_and_headings():
    text = (
        "## Sanctions\n\nThe U.S. Treasury acted. Then Mr. Smith left! "
        '"Really?" he asked. Prices rose 3.5 percent.'
    )
    got = split_sentences(text, base=100)
    assert [s.text for s in got] == [
        "## Sanctions",
        "The U.S. Treasury acted.",
        "Then Mr. Smith left!",
        '"Really?" he asked.',
        "Prices rose 3.5 percent.",
    ]
    assert got[0].heading and not any(s.heading for s in got[1:])
    assert all(text[s.start - 100 : s.end - 100] == s.text for s in got)


def test_curly_quotes_close_a_sentence():
    text = "FireEye said ‘it is no surprise.’ The regime mines bitcoin."
    assert [s.text for s in split_sentences(text)] == [
        "FireEye said ‘it is no surprise.’",
        "The regime mines bitcoin.",
    ]


def test_tokenize_stems_and_drops_stopwords():
    assert tokenize("What did North Korea’s hackers attack on the 17th of May?") == [
        "north",
        "korea",
        "hacker",
        "attack",
        "17",
        "may",
    ]
    assert stem("mining") == stem("mine") == stem("mined")
    assert stem("attacks") == stem("attacked") == stem("attacking")
    assert stem("exchanges") == stem("exchange")


def test_best_sentences_absolute_offsets():
    text = "North Korea is in the news. FireEye traced five attacks on exchanges. The end."
    chunk = Document(page_content=text, metadata={"start": 500})
    best = best_sentences("How many attacks did FireEye trace?", chunk, max_sentences=2)
    assert best[0].text == "FireEye traced five attacks on exchanges."
    assert best[0].start == 500 + text.index("FireEye")
    assert text[best[0].start - 500 : best[0].end - 500] == best[0].text
    assert len(best) == 1  # the other sentences share no term


def test_best_sentences_falls_back_to_first_sentence():
    chunk = Document(page_content="# Title\n\nAlpha beta. Gamma delta.", metadata={"start": 0})
    assert [s.text for s in best_sentences("zebra", chunk)] == ["Alpha beta."]


def test_relation_words_share_a_group_token():
    assert search_terms("When did they stop?") == ["stop", "@stop"]
    assert tokenize("When did they stop?") == ["stop"]  # tokenize stays literal
    assert "@stop" in search_terms("the country gave up its mining efforts")
    assert "@stop" not in search_terms("They gave the report up.")  # not the phrase "give up"
    assert search_terms("Who wrote it?") == ["writ", "@write"]
    assert relation("launched") is None and relation(stem("launched")) == "@start"
    assert relation("bitcoin") is None
    # "like" compares only as a preposition; the verb is no relation.
    assert "@compare" in search_terms("a regime that operates like a criminal enterprise")
    assert "@compare" not in search_terms("Why does the country like privacy coins?")


def test_bylines_and_datelines():
    byline = "By Jack Mathis, CCN.com. Last updated March 4, 2021 3:34 PM."
    assert (
        is_byline(byline)
        and "@write" in search_terms(byline)
        and "@publish" in search_terms(byline)
    )
    assert is_byline("Last updated March 4, 2021.") and is_byline("Published 2 May 2020")
    assert not is_byline("By July, North Korea had mined bitcoin.")
    assert "@write" not in search_terms("By July, North Korea had mined bitcoin.")
    # A byline line inside a longer text (a chunk) still counts for BM25.
    assert "@write" in search_terms("# Title\n\nBy Jane Doe and John Roe\n\nBody text.")
