from __future__ import annotations

from langchain_core.documents import Document

from bot.sentences import best_sentences, initialisms, is_acronym, split_sentences, stem, tokenize
from index.sentences import chunk_units
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


def test_stemming_meets_inflections_without_a_relation_table():
    assert stem("attacks") == stem("attacked") == stem("attacking") == "attack"
    assert stem("mining") == stem("mine")
    assert tokenize("When did they stop?") == ["stop"]


def test_chunk_units_keep_paragraphs_code_and_prompts():
    text = (
        "It is often expected. This is not\nwhat happens.\n\n- item one\n- item two\n\n"
        "```py\nx = 1\n```\n\n>>> a = 1\n1"
    )
    fence = text.index("```")
    units = chunk_units(text, 100, [(100 + fence, 100 + fence + len("```py\nx = 1\n```"))])
    got = [(text[u.start - 100 : u.end - 100], u.code, u.para) for u in units]
    assert got == [
        ("It is often expected.", False, 0),
        # A line break inside a paragraph is no sentence end.
        ("This is not\nwhat happens.", False, 0),
        ("- item one", False, 1),
        ("- item two", False, 1),
        ("```py\nx = 1\n```", True, 2),
        (">>> a = 1\n1", True, 3),
    ]


def test_abbreviations_in_a_long_text():
    # (The bounded look-back that keeps this linear is measured in bench/, not timed here.)
    text = "Mr. Smith met Dr. Jones. " * 4000
    assert len(split_sentences(text)) == 4000


def test_initialisms_of_runs_of_capitalised_words():
    text = (
        "Reports say the Democratic People’s Republic of Korea mines coins.\n"
        "A unit of the Korea Development Bank (KDB) said so. In 2017, Recorded Future agreed.\n"
        "Getting Started\nInstall it."
    )
    got = initialisms(text)
    assert got["dprk"] == "Democratic People’s Republic of Korea"  # joiners don't count
    assert got["kdb"] == "Korea Development Bank"
    assert got["rf"] == "Recorded Future"
    assert "gs" in got and "gsi" not in got  # a run ends with its line
    assert "rsd" not in got and "aukdb" not in got  # lowercase words and "(" end a run
    assert is_acronym("KDB") and is_acronym("NGOs") and not is_acronym("Korea")
