"""Citation checking as pure functions (bot/citations.py): no model, no server.

The claims are about the two seed articles (corpus/*.md); each names the chunk it cites by a
phrase only that chunk contains.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from bot.citations import claim_supported, key_tokens, missing_key_tokens

Q_START = "When did North Korea start mining bitcoin?"
Q_FUND = "How is North Korea funding itself?"
Q_SANCTIONS = "What sanctions were approved against North Korea?"
Q_VOLUME = "How much bitcoin did North Korea mine?"
Q_ATTACKS = "Who attacked bitcoin exchanges?"
Q_WHY = "Why were bitcoin exchanges attacked?"
Q_KDB = "What did the Korea Development Bank find?"
Q_HISTORY = "How long has North Korea used cryptocurrency?"
Q_HACKS = "Which exchange hacks is North Korea suspected of?"
Q_AUTHOR = "Who wrote the CCN article and when?"

# needles: a phrase only the intended chunk contains
MAY_17 = "17th of May"
UN = "UN Security Council"
VOLUMES = "determine the volumes"
FIREEYE = "traced five different attacks"
REGARDLESS = "we cannot see a clear reason"
MAY_JULY = "between May and July"
HISTORY = "as far back as 2014"
YOUBIT = "Youbit Exchange"
BYLINE = "By Jack Mathis"

CORRECT = [  # (claim, chunk needle, question): paraphrased and right; must keep the citation
    ("North Korea started mining bitcoin on May 17.", MAY_17, Q_START),
    ("The mining reportedly began on the 17th of May to raise revenue for the country.", MAY_17, Q_START),
    ("Mining began on the seventeenth of May.", MAY_17, Q_START),
    ("According to an intelligence research firm, the regime may be funding itself with cryptocurrency.", MAY_17, Q_FUND),
    ("The DPRK has taken an unexpected interest in Bitcoin and other digital currencies.", MAY_17, Q_FUND),
    ("The UN Security Council approved new sanctions, capping oil imports and banning textile exports.", UN, Q_SANCTIONS),
    ("Under the new UN sanctions, overseas labour contracts were ended.", UN, Q_SANCTIONS),
    ("The research firm could not determine how many bitcoin North Korea can generate per time period.", VOLUMES, Q_VOLUME),
    ("A second hypothesis is that a family allowed by the regime, not the government itself, is mining.", VOLUMES, Q_VOLUME),
    ("North Korean citizens have no access to the World Wide Web unless they are scientists, officials, diplomats or university students.", VOLUMES, Q_VOLUME),
    ("FireEye traced five attacks on bitcoin exchanges to North Korea.", FIREEYE, Q_ATTACKS),
    ("FireEye's analysts found 5 different attacks on worldwide bitcoin exchanges.", FIREEYE, Q_ATTACKS),
    ("According to FireEye, North Korea operates in many ways like a criminal enterprise.", FIREEYE, Q_ATTACKS),
    ("The author suggests the attacks may be linked to North Korea's sudden interest in mining bitcoin.", REGARDLESS, Q_WHY),
    ("A research unit of the Korea Development Bank said North Korea tried to mine bitcoin between May and July last year.", MAY_JULY, Q_START),
    ("The KDB report says the mining was meant to get around international sanctions.", MAY_JULY, Q_KDB),
    ("South Korea's state-run KDB found that the country is particularly interested in anonymous coins that hide money laundering.", MAY_JULY, Q_KDB),
    ("CCN.com reported that the country's first cryptocurrency transaction dates back to 2014.", HISTORY, Q_HISTORY),
    ("According to the report, North Korea gave up its mining after a short time.", HISTORY, Q_HISTORY),
    ("Recent defectors said they had never heard of cryptocurrency.", HISTORY, Q_HISTORY),
    ("Sanctions over its nuclear missile program leave the authoritarian government few ways to raise money.", HISTORY, Q_FUND),
    ("North Korea is the prime suspect in the Youbit Exchange hack last December.", YOUBIT, Q_HACKS),
    ("Youbit was hacked in December, and North Korea is the main suspect.", YOUBIT, Q_HACKS),
    ("A South Korean report claimed that North Korea stole tens of millions of dollars in coins from exchanges.", YOUBIT, Q_HACKS),
    ("Trump's pressure to denuclearize has not been satisfied, and a meeting between the two countries was called off.", YOUBIT, Q_SANCTIONS),
    ("The CCN article is by Jack Mathis and was last updated on March 4, 2021.", BYLINE, Q_AUTHOR),
]  # fmt: skip

WRONG = [  # (claim, chunk needle, question): wrong number/date/name or wrong chunk
    ("North Korea began mining bitcoin on May 17.", MAY_JULY, Q_START),
    ("North Korea mined bitcoin between May and July.", MAY_17, Q_START),
    ("Mining began on the 18th of May.", MAY_17, Q_START),
    ("FireEye traced seven attacks on bitcoin exchanges to North Korea.", FIREEYE, Q_ATTACKS),
    ("Kaspersky traced five attacks on bitcoin exchanges to North Korea.", FIREEYE, Q_ATTACKS),
    ("The cybersecurity firm Mandiant traced five attacks on bitcoin exchanges.", FIREEYE, Q_ATTACKS),
    ("CCN.com reported that the country's first cryptocurrency transaction dates back to 2013.", HISTORY, Q_HISTORY),
    ("North Korea is the prime suspect in the Bithumb Exchange hack last December.", YOUBIT, Q_HACKS),
    ("North Korea is the prime suspect in the Youbit Exchange hack last November.", YOUBIT, Q_HACKS),
    ("The EU Security Council approved new sanctions, capping oil imports.", UN, Q_SANCTIONS),
    ("A research unit of the Bank of Japan said North Korea tried to mine bitcoin between May and July.", MAY_JULY, Q_KDB),
    ("North Korea stole tens of billions of dollars worth of coins from cryptocurrency exchanges.", YOUBIT, Q_HACKS),
    ("The CCN article is by Jack Mathis and was last updated on March 5, 2021.", BYLINE, Q_AUTHOR),
    ("FireEye traced five attacks on bitcoin exchanges to North Korea.", UN, Q_ATTACKS),
    ("North Korea started mining bitcoin on the 17th of May.", YOUBIT, Q_START),
    ("The UN Security Council approved new sanctions, capping oil imports.", HISTORY, Q_SANCTIONS),
]  # fmt: skip


@pytest.fixture(scope="module")
def chunk_for(seed_chunks: list[Document]):
    def find(needle: str) -> Document:
        (chunk,) = [c for c in seed_chunks if needle in c.page_content]
        return chunk

    return find


def _supported(chunk_for, claim: str, needle: str, question: str) -> bool:
    chunk = chunk_for(needle)
    return claim_supported(claim, chunk.page_content, question, chunk.metadata.get("title", ""))


def test_the_sets_are_big_enough():
    assert len(CORRECT) >= 20 and len(WRONG) >= 10


@pytest.mark.parametrize(("claim", "needle", "question"), CORRECT)
def test_paraphrased_correct_claims_keep_their_citation(chunk_for, claim, needle, question):
    chunk = chunk_for(needle)
    missing = missing_key_tokens(claim, chunk.page_content, chunk.metadata["title"])
    assert not missing
    assert _supported(chunk_for, claim, needle, question)


@pytest.mark.parametrize(("claim", "needle", "question"), WRONG)
def test_wrong_claims_lose_their_citation(chunk_for, claim, needle, question):
    assert not _supported(chunk_for, claim, needle, question)


def test_the_issue_example_survived_on_topic_overlap_alone(chunk_for):
    """Issue 8: 'May 17' citing 'between May and July' shared enough topic words to pass."""
    claim, chunk = "North Korea began mining bitcoin on May 17", chunk_for(MAY_JULY)
    assert missing_key_tokens(claim, chunk.page_content) == ["17"]


# --- key tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ("on May 17", "on the 17th of May"),
        ("on May 17th", "on the seventeenth of May"),
        ("in 2014", "as far back as 2014."),
        ("5 attacks", "five attacks"),
        ("10,000 coins", "10000 coins"),
        ("on 2021-03-04", "on March 4, 2021"),
    ],
)
def test_numbers_and_dates_normalise_alike(a, b):
    ka, kb = key_tokens(a), key_tokens(b)
    assert ka.numbers == kb.numbers and ka.dates == kb.dates


def test_key_tokens_kinds():
    keys = key_tokens("Researchers say FireEye's team saw the KDB report on Monday, 3 June 2019.")
    assert keys.numbers == {"3", "2019"}
    assert keys.dates == {"month:6", "day:monday"}
    assert keys.names == {"fireeye"}  # "Researchers" starts the sentence and is common
    assert keys.acronyms == {"kdb"}


def test_sentence_start_names_outside_the_lexicon_count():
    assert "kaspersky" in key_tokens("Kaspersky saw it.").names
    assert not key_tokens("Reportedly, mining began.").names
    assert key_tokens("It may be so; they may not.").dates == set()  # the verb, not the month


@pytest.mark.parametrize(
    "claim, chunk",
    [
        ("FireEye saw it", "FireEye’s report saw it"),  # possessive, curly apostrophe
        ("Korean defectors", "defectors from North Korea"),  # a longer/shorter form
        ("the DPRK", "the Democratic People’s Republic of Korea"),  # initials
        ("KDB's report", "the KDB report"),
        ("the state-run bank", "state-run Korea Development Bank"),
    ],
)
def test_names_match_normalised_forms(claim, chunk):
    assert missing_key_tokens(claim, chunk) == []


def test_names_in_the_title_are_exempt_numbers_never():
    title = "North Korea Appears to Have Run a Short-Lived Bitcoin Mining Operation"
    chunk = "The rogue nation tried to mine bitcoin between May and July."
    assert missing_key_tokens("Mining by North Korea ran from May to July", chunk, title) == []
    assert missing_key_tokens("It ran from May 17 to July", chunk, title) == ["17"]
