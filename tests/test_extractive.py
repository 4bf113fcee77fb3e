from __future__ import annotations

import pytest
from langchain_core.embeddings import Embeddings

from bot.extractive import (
    NOT_FOUND,
    ExtractiveAnswerer,
    answer_type,
    key_terms,
    load_common_words,
)
from bot.retriever import HybridRetriever
from index.embedder import TOKENIZER_PATH, embedder_id
from index.loader import load_file
from index.pipeline import reindex
from index.store import IndexReader, make_client

COMMON = load_common_words(TOKENIZER_PATH)


class CountingEmbeddings(Embeddings):
    """Delegates to the real MiniLM; counts how many texts each method embedded."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.documents = 0
        self.queries = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        self.queries += 1
        return self.inner.embed_query(text)


def _parts(settings, embeddings):
    reader = IndexReader(
        client=make_client(settings),
        embeddings=embeddings,
        embedder_id=embedder_id(settings),
        prefix=settings.collection_prefix,
    )
    retriever = HybridRetriever(reader=reader, k=4)
    answerer = ExtractiveAnswerer(reader=reader, embeddings=embeddings, common_words=COMMON)
    return retriever, answerer


@pytest.fixture(scope="module")
def parts(seed_index, minilm):
    emb = CountingEmbeddings(minilm)
    retriever, answerer = _parts(seed_index, emb)
    return retriever, answerer, emb


def ask(parts, question):
    retriever, answerer, _ = parts
    return answerer.answer(question, retriever.invoke(question))


def test_key_terms_mark_names_numbers_and_rare_words():
    got = {k.word: k.hard for k in key_terms("Did North Korea hack Coincheck in 2019?", COMMON)}
    assert got == {"North": True, "Korea": True, "hack": False, "Coincheck": True, "2019": True}
    lowered = {k.word: k.hard for k in key_terms("did north korea hack coincheck", COMMON)}
    assert lowered["coincheck"] is True and lowered["hack"] is False
    # Sentence case on the first word is not a name.
    assert {k.word: k.hard for k in key_terms("Sanctions on oil?", COMMON)}["Sanctions"] is False


def test_quotes_are_verbatim_and_cited(parts, seed_index):
    answer = ask(parts, "When did North Korea start mining Bitcoin?")
    assert not answer.abstained and answer.mode == "extractive"
    assert 1 <= len(answer.citations) <= 3
    assert "17th of May" in answer.text
    for n, c in enumerate(answer.citations, start=1):
        assert c.n == n and f"[{n}]" in answer.text
        doc = load_file(
            seed_index.corpus_dir / c.source, root=seed_index.corpus_dir, max_bytes=10**7
        )
        assert doc.text[c.start : c.end] == c.quote
        assert c.quote in answer.text
        assert c.title == doc.title
    # Citations are numbered in order of appearance.
    positions = [answer.text.index(f"[{c.n}]") for c in answer.citations]
    assert positions == sorted(positions)


def test_metadata_is_carried_into_citations(parts):
    answer = ask(parts, "Which exchange hack is North Korea the prime suspect for?")
    (c,) = answer.citations
    assert "Youbit Exchange hack" in c.quote
    assert (c.publisher, c.author, c.date) == ("CCN", "Jack Mathis", "2021-03-04")
    assert c.chunk_id


@pytest.mark.parametrize(
    "question",
    [
        "Did North Korea hack Coincheck?",
        "What did Kim Jong-un say about bitcoin?",
        "How much bitcoin did North Korea mine in 2019?",
        "Who is the CEO of FireEye?",
    ],
)
def test_abstains_on_facts_no_document_contains(parts, question):
    answer = ask(parts, question)
    assert answer.abstained and answer.citations == []
    assert answer.text.startswith(NOT_FOUND)


def test_related_but_uncovered_lists_nearest_sources(parts):
    # Both names exist in the corpus, but never in the same passage.
    answer = ask(parts, "Did FireEye trace the Youbit exchange hack?")
    assert answer.abstained
    assert "Nearest sources:" in answer.text


def test_off_topic_abstains_without_sources(parts):
    answer = ask(parts, "What is the capital of France?")
    assert answer.abstained and answer.text == NOT_FOUND


def test_warm_question_embeds_no_sentences(parts):
    _, _, emb = parts
    ask(parts, "Why do most countries have sanctions on North Korea?")
    before = emb.documents
    ask(parts, "Why do most countries have sanctions on North Korea?")
    assert emb.documents == before


def test_new_generation_is_picked_up(index_settings, minilm):
    retriever, answerer = _parts(index_settings, minilm)
    question = "Which volcano did the pilot fly over?"
    assert answerer.answer(question, retriever.invoke(question)).abstained
    (index_settings.corpus_dir / "volcano.md").write_text(
        "# Flight log\n\nThe pilot flew over the Etna volcano at dawn. The weather was calm.\n",
        encoding="utf-8",
    )
    reindex(index_settings, embeddings=minilm)
    answer = answerer.answer(question, retriever.invoke(question))
    assert not answer.abstained
    assert answer.citations[0].source == "volcano.md"
    assert "Etna volcano" in answer.citations[0].quote


def test_relation_words_find_the_sentence_that_states_them(parts):
    # "stop" ~ "gave up": the start sentence shares more words but answers the opposite.
    # Every chunk is evidence here, so this checks the answerer, whatever retrieval ranks.
    retriever, answerer, _ = parts
    question = "When did North Korea stop mining bitcoin?"
    docs = retriever.model_copy(update={"k": 50}).invoke(question)
    assert len({d.metadata["source"] for d in docs}) == 2 and len(docs) > 4
    answer = answerer.answer(question, docs)
    assert not answer.abstained
    assert "gave up its mining efforts" in answer.citations[0].quote
    assert not any("17th of May" in c.quote for c in answer.citations)


@pytest.mark.parametrize(
    "question",
    [
        "When did North Korea stop hacking exchanges?",  # stopping: only about mining
        "When did the UN lift sanctions on North Korea?",  # the UN approved them
        "What is the capital of North Korea?",  # only the names are known
    ],
)
def test_abstains_when_no_sentence_states_what_is_asked(parts, question):
    assert ask(parts, question).abstained


def test_byline_answers_who_wrote_its_own_document(parts):
    answer = ask(parts, "Who wrote the CCN article?")
    assert not answer.abstained
    assert answer.citations[0].quote.startswith("By Jack Mathis")
    assert answer.citations[0].source == "north-korea-short-lived-bitcoin-mining.md"
    assert "Last updated March 4, 2021" in ask(parts, "When was the CCN piece published?").text
    # Neither names the CCN piece: its byline is no answer, and the other article has none.
    assert ask(parts, "Who wrote the FireEye report?").abstained
    question = "Who wrote the article about North Korea attacking digital currency exchanges?"
    assert ask(parts, question).abstained


def test_answer_types():
    when = answer_type("and when did it stop?", set())
    assert when("It started on the 17th of May.") and not when("It stopped.")
    who = answer_type("Who disclosed the report about North Korea?", {"north", "korea"})
    assert who("The Korea Development Bank disclosed it.")
    assert not who("The report about North Korea was disclosed.")
    assert who("By Jack Mathis, CCN.com.")
    how_long = answer_type("How long did it last?", set())
    assert how_long("It ran between May and July.") and not how_long("It ran last year.")
    assert answer_type("What is North Korea best known for?", set()) is None


def test_relations_and_bylines_work_on_any_document(index_settings, minilm):
    # Not tuned to the seed corpus: a new document, new words, the same general relations.
    (index_settings.corpus_dir / "plant.md").write_text(
        "# Plant closure\n\nBy Maria Lopez, Example News\n\n"
        "The Leeds plant began producing batteries in 2015. "
        "Its owner halted production in June 2020 after losses.\n",
        encoding="utf-8",
    )
    reindex(index_settings, embeddings=minilm)
    retriever, answerer = _parts(index_settings, minilm)

    def quotes(question: str) -> str:
        answer = answerer.answer(question, retriever.invoke(question))
        assert not answer.abstained, question
        assert answer.citations[0].source == "plant.md"
        return answer.citations[0].quote

    assert "halted production in June 2020" in quotes("When did the Leeds plant stop production?")
    assert "began producing batteries" in quotes("When did the Leeds plant start production?")
    assert quotes("Who wrote about the plant closure?").startswith("By Maria Lopez")
