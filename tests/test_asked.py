"""A section whose heading asks the user's question is quoted (bot/answer/asked.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

import bot.answer.asked as asked
from bot.answer.asked import HeadingVectors, asked_heading
from bot.service import build_service
from bot.settings import BotSettings
from index.chunker import question_heading
from index.embedder import DIMENSION
from index.pipeline import reindex
from index.sentences import HEADING_VECTOR, decode_unit_vectors
from tests.helpers import index_reader

# A FAQ and a guide that share the FAQ's topic: the guide's passage has more of the
# question's words, the FAQ's heading asks the question.
CORPUS = Path(__file__).parent / "data" / "asked"


class Scripted(Embeddings):
    """Fixed vectors per text (the seam): counts what it was asked to embed."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += texts
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


@pytest.mark.parametrize(
    ("section", "heading"),
    [
        ("FAQ › Tasks › Can I safely shut down the worker?", "Can I safely shut down the worker?"),
        ("Can I?", "Can I?"),
        ("FAQ › Tasks", None),
        ("What is new? › Installing", None),  # only the section's own heading counts
        ("", None),
        ("FAQ › ?", None),
    ],
)
def test_the_own_heading_counts_when_it_is_a_question(section, heading):
    assert question_heading({"section": section, "title": "FAQ"}) == heading


def test_heading_vectors_are_embedded_once_and_normalised():
    fake = Scripted({"A?": [3.0, 4.0], "B?": [0.0, 2.0]})
    vectors = HeadingVectors(fake, size=1)
    first = vectors.of(["A?", "A?"])
    assert fake.embedded == ["A?"] and np.allclose(first["A?"], [0.6, 0.8])
    vectors.of(["A?"])
    assert fake.embedded == ["A?"]  # remembered
    vectors.of(["B?"])
    vectors.of(["A?"])
    assert fake.embedded == ["A?", "B?", "A?"]  # one kept: B? pushed A? out


def test_the_heading_must_ask_the_same_question():
    near, far = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    q = np.array([np.cos(0.5), np.sin(0.5)])  # cosine 0.88 to near, 0.48 to far
    assert asked_heading({"Far?": far, "Near?": near}, q) == "Near?"
    assert asked_heading({"Far?": far}, q) is None
    assert asked_heading({}, q) is None


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, minilm) -> BotSettings:
    root = tmp_path_factory.mktemp("asked")
    shutil.copytree(CORPUS, root / "corpus")
    settings = BotSettings(_env_file=None, corpus_dir=root / "corpus", index_dir=root / "index")
    reindex(settings, embeddings=minilm)
    return settings


@pytest.fixture(scope="module")
def faq_and_guide(indexed):
    return build_service(indexed, build_if_missing=False)


def test_question_headings_are_embedded_at_index_time(indexed, minilm):
    view = index_reader(indexed, minilm).snapshot().view
    seen = set()
    for _, _, md in view.rows(["metadatas"]):
        heading = question_heading(md)
        stored = decode_unit_vectors(md.get(HEADING_VECTOR), DIMENSION)
        assert (stored is None) == (heading is None), md.get("section")
        if heading is not None:
            (alone,) = minilm.embed_documents([heading])
            assert float(stored[0] @ np.asarray(alone)) > 0.99  # int8, as sentence vectors
            seen.add(heading)
    assert seen == {"Can I safely shut down the worker?", "Is it safe to run the worker as root?"}


def test_the_section_under_a_heading_asking_the_question_is_quoted(faq_and_guide, monkeypatch):
    question = "can i stop the worker without losing tasks?"
    answer = faq_and_guide.answer(question)
    assert not answer.abstained
    assert answer.citations[0].source == "faq.md"
    assert answer.citations[0].quote.startswith("Answer: Yes, use the TERM signal.")
    # Without the heading, the guide's passage (more of the question's words) would be it.
    monkeypatch.setattr(asked, "ASKS_SAME", 1.01)
    assert faq_and_guide.answer(question).citations[0].source == "workers.md"


def test_a_question_no_heading_asks_is_answered_as_before(faq_and_guide):
    answer = faq_and_guide.answer("how many processes does the worker start by default?")
    assert not answer.abstained
    assert answer.citations[0].source == "workers.md"
    assert "one process per CPU core" in answer.citations[0].quote
