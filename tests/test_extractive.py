"""The offline answerer on real indexes: verbatim quotes, structure (headings, code), decisions."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from bot.answer.extractive import (
    LEAD_IN_CHARS,
    MAX_QUOTES,
    NOT_FOUND,
    SECTION_QUOTE_CHARS,
    SITUATION_WEIGHT,
    ExtractiveAnswerer,
    Passage,
    Unit,
    announces,
    answer_type,
    asks_about_document,
    closed_code,
    context_ranges,
    english_word_counts,
    joined_text,
    load_common_words,
    more_quotes,
    named_terms,
    pairs_with,
    question_terms,
    runs_on,
    same_section,
    states,
    units_of,
)
from bot.followup import Standalone
from bot.retriever import HybridRetriever, Lexicon
from bot.sentences import word_spans
from bot.service import build_service
from bot.settings import BotSettings
from index import lexical
from index.embedder import TOKENIZER_PATH
from index.loader import load_file
from index.pipeline import reindex
from index.sentences import UNIT_VECTORS, decode_unit_vectors, units_of_chunk
from index.terms import normalize_word, placeholders, stem, symbol_names, typo_fixes
from tests.helpers import index_reader

SITES = Path(__file__).parent / "data" / "sites"


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


@pytest.fixture(scope="module")
def service(seed_index):
    return build_service(seed_index, build_if_missing=False)


@pytest.fixture(scope="module")
def faq_service(tmp_path_factory, minilm):
    """A real Sphinx FAQ page (tests/data/sites) indexed on its own."""
    root = tmp_path_factory.mktemp("faq-site")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(SITES / "sphinx-alabaster" / "faq.html", corpus / "faq.html")
    settings = BotSettings(_env_file=None, corpus_dir=corpus, index_dir=root / "index")
    reindex(settings, embeddings=minilm)
    return build_service(settings, build_if_missing=False)


def test_quotes_are_verbatim_and_cited(service, seed_index):
    answer = service.answer("When did North Korea start mining Bitcoin?")
    assert not answer.abstained and answer.mode == "extractive"
    assert "17th of May" in answer.text
    for n, c in enumerate(answer.citations, start=1):
        assert c.n == n and f"[{n}]" in answer.text
        doc = load_file(
            seed_index.corpus_dir / c.source, root=seed_index.corpus_dir, max_bytes=10**7
        )
        assert doc.text[c.start : c.end] == c.quote
        assert c.quote in answer.text
        assert c.title == doc.title


def test_metadata_and_heading_path_are_carried_into_citations(service):
    answer = service.answer("Which exchange hack is North Korea the prime suspect for?")
    (c,) = answer.citations
    assert "Youbit Exchange hack" in c.quote
    assert (c.publisher, c.author, c.date) == ("CCN", "Jack Mathis", "2021-03-04")
    assert c.heading_path and c.heading_path.endswith("Hacking over Mining?")
    assert c.anchor == "hacking-over-mining" and c.chunk_id


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "How do I bake sourdough bread?", "recipe for pancakes"],
)
def test_off_topic_abstains(service, question):
    answer = service.answer(question)
    assert answer.abstained and answer.citations == []
    assert answer.text.startswith(NOT_FOUND)


def test_the_answer_under_a_question_heading_is_quoted_not_the_heading(faq_service):
    answer = faq_service.answer("does every call make a brand new widget?")
    assert not answer.abstained
    quote = answer.citations[0].quote
    # The refuting sentences come with the expectation they refute; the heading never does.
    assert "This is not what happens" in quote and "created exactly once" in quote
    assert "Why does my widget keep growing?" not in quote
    assert answer.citations[0].heading_path.endswith("Why does my widget keep growing?")


def test_code_is_quoted_only_when_a_sentence_introduces_it(faq_service):
    answer = faq_service.answer("can I reset a widget")
    quote = answer.citations[0].quote
    assert quote.startswith("Yes, there is.")
    # "Call reset() on it:" announces the code block, which is kept exactly (indentation too).
    assert "    if widget.size > 10:\n        widget.size = 0" in quote
    for question in ("how do I install Widget", "what rights does the installer need"):
        quote = faq_service.answer(question).citations[0].quote
        assert ">>>" not in quote and "--user" in quote


@pytest.mark.parametrize("margin", [0.0, 1e9])
def test_more_quotes_come_from_other_chunks_of_the_same_document(faq_service, margin):
    """Passages ranking within `second_margin` of the best are quoted too (up to MAX_QUOTES),
    but only from the same document, other chunks, and never overlapping another quote."""
    answerer = faq_service.extractive
    saved = answerer.ranking
    answerer.ranking = replace(saved, second_margin=margin)
    try:
        question = "does every call make a brand new widget?"
        answer = answerer.answer(question, faq_service.search(question))
    finally:
        answerer.ranking = saved
    assert not answer.abstained
    if margin == 0.0:
        assert len(answer.citations) == 1
        return
    cited = answer.citations  # an unbounded margin always finds more on this page
    assert 2 <= len(cited) <= MAX_QUOTES
    assert answer.text == " ".join(f"“{c.quote}” [{c.n}]" for c in cited)
    assert len({c.source for c in cited}) == 1 and len({c.chunk_id for c in cited}) == len(cited)
    for a in cited:
        assert all(a.end <= c.start or c.end <= a.start for c in cited if c is not a)


def test_more_quotes_within_the_margin_each_from_another_chunk_up_to_the_limit():
    first = ("a.md", 0, 100, 900)  # the first quote before it runs on
    others = [
        ("a.md", 1, 500, 600),  # inside the first quote
        ("b.md", 2, 0, 100),  # another document
        ("a.md", 3, 1000, 1100),
        ("a.md", 3, 1200, 1300),  # the chunk already quoted
        ("a.md", 4, 2000, 2100),
        ("a.md", 5, 3000, 3100),  # past the limit
    ]
    scores = [9.9, 9.8, 9.7, 9.6, 9.5, 9.4]
    assert more_quotes(first, others, scores, best=10.0, margin=1.0, limit=2) == [2, 4]
    assert more_quotes(first, others, scores, best=10.0, margin=0.35, limit=2) == [2]
    assert more_quotes(first, others, scores, best=10.0, margin=0.0) == []


def test_sentence_vectors_are_stored_with_every_chunk(seed_index, minilm):
    reader = index_reader(seed_index, minilm)
    for _, text, md in reader.snapshot().view.rows(["documents", "metadatas"]):
        vectors = decode_unit_vectors(md[UNIT_VECTORS], 384)
        assert vectors is not None and len(vectors) == len(units_of_chunk(text, md))


def test_a_warm_question_runs_no_model_but_the_query(seed_index, minilm):
    counting = CountingEmbeddings(minilm)
    service = build_service(seed_index, build_if_missing=False)
    service.extractive._embeddings.inner = counting  # the retriever shares this cache
    service.answer("Why do most countries have sanctions on North Korea?")
    assert counting.documents == 0 and counting.queries == 1


def test_new_documents_are_answered_after_a_reindex(index_settings, minilm):
    service = build_service(index_settings, build_if_missing=False)
    question = "Which volcano did the pilot fly over at dawn?"
    assert service.answer(question).abstained
    (index_settings.corpus_dir / "volcano.md").write_text(
        "# Flight log\n\nThe pilot flew over the Etna volcano at dawn. The weather was calm.\n",
        encoding="utf-8",
    )
    reindex(index_settings, embeddings=minilm)
    answer = service.answer(question)
    assert not answer.abstained
    assert answer.citations[0].source == "volcano.md"
    assert "Etna volcano" in answer.citations[0].quote


def test_question_terms_mark_names_numbers_and_rare_words():
    common = load_common_words(TOKENIZER_PATH)
    got = {
        t.word: t.hard for t in question_terms("Did North Korea hack Coincheck in 2019?", common)
    }
    assert got == {"North": True, "Korea": True, "hack": False, "Coincheck": True, "2019": True}
    assert {t.word: t.hard for t in question_terms("Sanctions on oil?", common)} == {
        "Sanctions": False,
        "oil": False,
    }
    # A rare English word is not a name; a lowercase name still is.
    rare = {t.word: t.hard for t in question_terms("why so sluggish in pyongyang", common)}
    assert rare == {"sluggish": False, "pyongyang": True}
    # Chat spelling is not a rare name the answer must contain.
    typed = question_terms("the default doesnt show in help lol, whats wrong", common)
    assert {t.word for t in typed} == {"default", "show", "help", "wrong"}
    # A number inside code is syntax; a chat shortening is a common word (both not hard).
    code = {t.word: t.hard for t in question_terms("why does cmd 2>&1 fail since 2019", common)}
    assert code == {
        "cmd": False,
        "2": False,
        "1": False,
        "fail": False,
        "since": False,
        "2019": True,
    }


def test_the_capitals_of_an_identifier_mark_no_name():
    common = load_common_words(TOKENIZER_PATH)
    got = {
        t.word: t.hard
        for t in question_terms("is KDB read from DEFAULT_CLASSES or MAX_KDB", common)
    }
    # A setting's capitals are how it is spelled; the same letters alone are an acronym.
    assert got == {"KDB": True, "read": False, "DEFAULT": False, "CLASSES": False, "MAX": False}


def test_examples_in_parentheses_are_not_what_the_answer_must_hold():
    common = load_common_words(TOKENIZER_PATH)
    for question, example in (
        ("how do i pass extra args (like an ssl option) through create_engine", "ssl"),
        ("loading is slow in python (populate_state etc), how to speed it up", "populate"),
        ("share state (e.g. a db handle, a KDB) with subcommands", "KDB"),
    ):
        terms = {t.word: t for t in question_terms(question, common)}
        assert not terms[example].hard and terms[example].weight < 1.0, question
    # A parenthesis that says what is asked is part of the question.
    (xdg,) = [t for t in question_terms("where do configs go (xdg)", common) if t.word == "xdg"]
    assert xdg.hard and xdg.weight == 1.0


def test_an_initialism_the_corpus_uses_is_held_by_the_name_it_writes_out():
    rows = [("a", "The Korea Development Bank (KDB) said so.", {"source": "a.md"})]
    corpus = Lexicon(lexical.build("g", rows), lambda ids: {})
    assert (
        corpus.initialism_name("kdb")
        == corpus.initialism_name("KDB")
        == "The Korea Development Bank"
    )
    assert corpus.initialism_name("kd") is None  # two initials fit too many pairs of words
    common = load_common_words(TOKENIZER_PATH)
    (kdb,) = [t for t in named_terms(question_terms("did kdb agree", common), corpus) if t.hard]
    assert kdb.held_by({"kdb"}) and kdb.held_by({"korea", "development", "bank"})
    assert not kdb.held_by({"korea", "bank"})


def test_a_sentence_describing_the_askers_situation_names_nothing_the_answer_must_hold():
    common = load_common_words(TOKENIZER_PATH)

    def hard(question: str) -> dict[str, bool]:
        return {t.word: t.hard for t in question_terms(question, common)}

    asked = hard("when would i turn on late acks in Celery? my worker gets oom killed mid task")
    assert asked["Celery"] is True  # the question's own name
    assert asked["oom"] is False  # what the asker sees, said beside the question
    # The same word in the question sentence itself stays a name.
    assert hard("why does my worker get oom killed mid task?")["oom"] is True
    assert hard("when do i turn on acks? my worker gets oom killed")["oom"] is False
    # A bare tag question ("bug?") leaves the statement as the question's content, and so
    # does a question sentence pointing back at it ("them").
    tagged = hard("set -e doesnt exit when the failing command is inside Coincheck. bug?")
    assert tagged["Coincheck"] is True
    back = hard("vars set inside Coincheck are empty after the loop. any way to keep them?")
    assert back["Coincheck"] is True
    # "$?" and "..." end no sentence.
    assert hard("why does return 300 in a function give me $? of 44")["44"] is True
    assert context_ranges("is it fast? yes", word_spans("is it fast? yes")) == []
    # A situation after the question, even with a pronoun in the question ("them"), weighs
    # a quarter; a second question of its own after the first is not this answer's.
    weight = {
        t.word: t.weight for t in question_terms("can click ask them for it? im on Windows", common)
    }
    assert weight["Windows"] == SITUATION_WEIGHT and weight["click"] == 1.0
    two = "how do I pin a version? also, is there a changelog somewhere?"
    assert context_ranges(two, word_spans(two)) == [(two.index("?") + 1, len(two))]
    leaning = "does click support aliases? how do i set them up?"  # "them": part of the first
    assert context_ranges(leaning, word_spans(leaning)) == []


def test_placeholder_names_are_the_askers_own_not_words_to_search_for():
    common = load_common_words(TOKENIZER_PATH)
    said = {t.word for t in question_terms("bash -c 'echo $1' foo bar prints bar", common)}
    assert said == {"bash", "echo", "1", "prints"}
    assert {t.word for t in question_terms("does it expand ~/foo", common)} == {"expand"}
    # Without its kin, "bar" is a word.
    assert "bar" in {t.word for t in question_terms("progress bar shows no ETA", common)}
    retriever = HybridRetriever(reader=None)
    corpus = Lexicon(lexical.build("g", [("a", "x", {"source": "a.md"})]), lambda ids: {})
    assert retriever._query_terms("import { foo } from a package", corpus) == ["import", "packag"]
    assert placeholders("a progress bar") == set()


def test_a_symbol_typed_alone_is_searched_for_by_its_name():
    assert symbol_names("my sql shows %% where i only wrote one %") == ["percent"]
    assert symbol_names("what does the / mean in def f(a, /)?") == ["slash"]
    # Between two words "/", "&" and "|" join them.
    assert symbol_names("no ETA / remaining time, backup & restore, dev | prod") == []
    assert symbol_names("started jobs with &, how do i wait") == ["ampersand"]
    assert symbol_names("what does * do, and ~?") == ["asterisk", "tilde"]
    # Inside code or a path it is syntax, not something asked about.
    assert symbol_names("cmd 2>&1 >file; for f in *.txt; cd ~/src; a/b") == []
    retriever = HybridRetriever(reader=None)
    corpus = Lexicon(lexical.build("g", [("a", "x", {"source": "a.md"})]), lambda ids: {})
    assert retriever._query_terms("why %% here", corpus) == ["percent"]


def test_words_offered_as_alternatives_know_each_other():
    common = load_common_words(TOKENIZER_PATH)

    def alts(question: str) -> dict[str, tuple[str, ...]]:
        return {t.word: t.alternatives for t in question_terms(question, common)}

    assert alts("install from a usb stick or over pxe")["pxe"] == ("stick",)
    assert alts("shows no ETA / remaining time")["ETA"] == ("remain",)
    assert alts("no meta/alt key")["meta"] == ("alt",)
    assert alts("why is /bin a symlink to /usr/bin")["usr"] == ()  # a path, not a choice
    assert all(a == () for a in alts("Did North Korea hack Coincheck?").values())


def test_a_missing_name_offered_beside_a_known_word_does_not_count_as_missing(service):
    rows = [("a", "Install from a USB stick or a DVD.", {"source": "a.md", "chunk_index": 0})]
    corpus = Lexicon(lexical.build("g", rows), lambda ids: {})
    common = load_common_words(TOKENIZER_PATH)

    def hard(question: str) -> dict[str, bool]:
        terms = question_terms(question, common)
        return {t.word: service.extractive._read(t, corpus).hard for t in terms}

    assert hard("install from a usb stick or over pxe")["pxe"] is False
    assert hard("install over pxe")["pxe"] is True  # nothing offered in its place
    assert hard("install over pxe or bootp")["pxe"] is True  # nor anything the corpus knows


def test_an_acronym_the_corpus_never_uses_is_read_as_the_name_it_spells_out(service):
    # The articles write "Democratic People's Republic of Korea", never "DPRK": that is no
    # sign they don't answer, and the passage that does is quoted.
    answer = service.answer("Did the DPRK keep its crypto mining going for long?", [])
    assert not answer.abstained
    assert any("gave up its mining efforts after a short time" in c.quote for c in answer.citations)
    rows = [("a", "The Korea Development Bank (KDB) said so.", {"source": "a.md"}),
            ("b", "The International Energy Agency agrees.", {"source": "b.md"})]  # fmt: skip
    corpus = Lexicon(lexical.build("g", rows), lambda ids: {})
    assert corpus.acronym_name("IEA") == "The International Energy Agency"
    assert corpus.acronym_name("KDB") is None  # the corpus uses it
    assert corpus.acronym_name("EA") is None  # two initials fit too many pairs of words
    assert corpus.acronym_name("XYZ") is None


def test_a_typo_of_an_english_word_is_read_as_the_word_not_as_a_name(service):
    assert "separate" in typo_fixes("seperate") and "received" in typo_fixes("recieved")
    assert "prompt" not in typo_fixes("rprompt")  # a name built on a word changes its ends
    assert typo_fixes("zsh") == set() and typo_fixes("2>&1x") == set()

    rows = [
        ("a", "Write trace output to a separate file.", {"source": "a.md", "chunk_index": 0}),
        ("b", "The prompt shows the separate host.", {"source": "a.md", "chunk_index": 1}),
    ]
    corpus = Lexicon(lexical.build("g", rows), lambda ids: {})
    common = load_common_words(TOKENIZER_PATH)

    def read(question: str) -> dict[str, tuple[str, bool]]:
        return {
            t.word: (r.term, r.hard)
            for t in question_terms(question, common)
            for r in [service.extractive._read(t, corpus)]
        }

    assert read("a seperate file for rprompt") == {
        "seperate": ("separat", False),  # a typo of a word the corpus uses
        "file": ("fil", False),
        "rprompt": ("rprompt", True),  # unknown, and no typo of a word: a name
    }
    assert read("is Seperate a file") == {"Seperate": ("seperat", True), "file": ("fil", False)}
    # The retriever searches the corrected word too.
    retriever = HybridRetriever(reader=None, english=common)
    assert retriever._query_terms("trace to a seperate file", corpus) == ["trac", "separat", "fil"]
    assert HybridRetriever(reader=None)._query_terms("seperate", corpus) == ["seperat"]


def test_typos_are_respelled_before_the_question_is_embedded(service):
    rows = [("a", "Debian codenames come from Toy Story.", {"source": "a.md", "chunk_index": 0})]
    corpus = Lexicon(lexical.build("g", rows), lambda ids: {})
    common = load_common_words(TOKENIZER_PATH)
    counts = english_word_counts()

    def spelled(word: str) -> str | None:
        return corpus.spelling(word, stem(normalize_word(word)), common, counts)

    assert spelled("codeanmes") == "codenames"  # the corpus's own jargon, no English word
    assert spelled("ordianry") == "ordinary"  # an English word, though the corpus lacks it
    assert spelled("codenames") is None and spelled("ordinary") is None  # spelled right
    assert spelled("Codeanmes") is None  # capitalised: a name, left alone
    assert spelled("pnpm") is None  # too short to tell a typo from jargon
    # The chain embeds and searches the respelled question: the same answer as spelled right.
    right = service.answer("When did North Korea start mining bitcoin?")
    typed = service.answer("When did North Korea start minnig bitocin?")
    assert typed.standalone_question == "When did North Korea start mining bitcoin?"
    assert [c.quote for c in typed.citations] == [c.quote for c in right.citations]


def test_answer_types():
    when = answer_type("and when did it stop?")
    assert when("It started on the 17th of May.") and not when("It stopped.")
    assert answer_type("when should i use a flag instead of an option") is None
    assert answer_type("When to prefer arguments?") is None
    how_many = answer_type("How many attacks were traced?")
    assert how_many("five different attacks") and not how_many("some attacks")
    assert answer_type("What is North Korea best known for?") is None
    # A symptom ("never gets called", "still isn't paginated") is answered by a limit or a
    # condition: what the software does not do, or only does when.
    symptom = answer_type("has_object_permission never gets called on my list endpoint")
    assert symptom("Generic views will not apply object level permissions to lists.")
    assert symptom("It is called only if the view-level check passed.")
    assert not symptom("Object level permissions are run by generic views.")
    assert answer_type("i set the page size but the list still isn't paginated") is not None
    assert answer_type("should I firewall services or just not run them") is None


def test_a_standalone_follow_up_carries_its_context_at_half_weight(service):
    answer = service.extractive.answer(
        Standalone("when did it stop?", ("North", "Korea", "mining")),
        service.search("when did it stop? North Korea mining"),
    )
    assert not answer.abstained


def test_a_name_borrowed_from_an_earlier_question_need_not_be_in_the_quote(service):
    # The same quote answers; only a name the asker writes now must be in it.
    q = "When did North Korea start mining bitcoin?"
    seen = {}
    for label, st in (
        ("alone", Standalone(q)),
        ("borrowed", Standalone(q, ("FireEye",))),
        ("own", Standalone("When did North Korea start mining bitcoin, says FireEye?")),
    ):
        answer, features = service.extractive.explain(st, service.search(st.query))
        assert "FireEye" not in answer.citations[0].quote
        seen[label] = features["hard_uncovered"]
    assert seen == {"alone": 0.0, "borrowed": 0.0, "own": 1.0}


def test_a_word_put_in_for_a_typo_is_no_name_the_quote_must_hold(service):
    # "Ceds" stands for a word the chain respelled (one slip away, as a junk file's random
    # word can be): an ordinary word, as the answerer's own typo reading makes one.
    q = "When did North Korea start mining bitcoin, ceds?"
    seen = {}
    for label, st in (
        ("typed", Standalone(q)),
        ("respelled", Standalone(q, respelled=frozenset({"ceds"}))),
    ):
        _, features = service.extractive.explain(st, service.search(st.query))
        seen[label] = features["hard_uncovered"]
    assert seen == {"typed": 1.0, "respelled": 0.0}


def test_a_second_quote_pairs_only_with_another_chunk_of_the_same_document():
    first = ("a.md", 0, 100, 200)
    assert pairs_with(first, ("a.md", 2, 300, 400))
    assert not pairs_with(first, ("b.md", 2, 300, 400))  # another document
    assert not pairs_with(first, ("a.md", 0, 300, 400))  # the same chunk
    assert not pairs_with(first, ("a.md", 2, 150, 400))  # overlaps (chunks overlap too)
    assert pairs_with(first, ("a.md", 2, 200, 260))  # touching is not overlapping


def _section(*paras: str | tuple[str, bool], lead: bool = True, level: int = 2) -> Passage:
    """A chunk that opens its section (`lead`) under a heading of `level`, one unit per
    paragraph ((text, code))."""
    units, at = [], 0
    for i, para in enumerate(paras):
        text, code = para if isinstance(para, tuple) else (para, False)
        units.append(Unit(text, at, at + len(text), code, i))
        at += len(text) + 2
    return Passage(
        chunk=Document(page_content="", metadata={"level": level}), rank=0, units=units,
        context_terms=set(), dense=0.0, section_lead=lead, own_units=len(units),
    )  # fmt: skip


def test_a_quote_that_starts_just_inside_a_section_starts_at_the_section():
    p = _section("To write a type, subclass Base.", "This example accepts hex numbers.", "More.")
    lead_in = ExtractiveAnswerer._lead_in
    assert lead_in(p, p.units[1:2]) == p.units[:2]
    assert lead_in(p, p.units[:1]) == p.units[:1]  # already at the start
    assert lead_in(replace(p, section_lead=False), p.units[1:2]) == p.units[1:2]
    page = _section("By A. Writer, May 4.", "The fact.", level=1)  # a page's title section
    assert lead_in(page, page.units[1:]) == page.units[1:]
    far = _section("x" * (LEAD_IN_CHARS + 1), "The detail.")
    assert lead_in(far, far.units[1:]) == far.units[1:]  # too far into the section


def test_a_sections_example_does_not_keep_its_opening_from_the_quote():
    # The opening statement, its example, then the detail that matched the question.
    example = ("@click.option('--name', prompt=True)\n" * 20, True)
    p = _section("Click can prompt for a missing value.", example, "A different prompt string:")
    assert len(example[0]) > LEAD_IN_CHARS
    assert ExtractiveAnswerer._lead_in(p, p.units[2:]) == p.units
    prose = _section("Click can prompt.", "x" * LEAD_IN_CHARS, example, "The detail.")
    assert ExtractiveAnswerer._lead_in(prose, prose.units[3:]) == prose.units[3:]
    huge = _section("Click can prompt.", ("x\n" * SECTION_QUOTE_CHARS, True), "The detail.")
    assert ExtractiveAnswerer._lead_in(huge, huge.units[2:]) == huge.units[2:]


def test_a_quote_runs_on_into_the_next_chunk_of_its_section():
    p = _section("Pre-X is a special kind.", "Most things do Y.", "Some refuse: that is Pre-X.")
    cut = replace(p, units=p.units[:2], own_units=2, tail=p.units[2:])  # the chunk ends
    run_on = ExtractiveAnswerer._run_on
    assert run_on(cut, cut.units[:1], False) == p.units  # the section's last paragraph too
    last = p.units[2]
    unread = replace(  # the next chunk's units are read only when a quote runs on
        cut, tail=None, following=Document(page_content=last.text, metadata={"start": last.start})
    )
    assert [u.text for u in run_on(unread, unread.units[:1], False)] == [u.text for u in p.units]
    code = _section("Do this:", ("make it", True), "Then this.", ("make that", True))
    assert run_on(code, code.units[:1], False) == code.units[:3]  # unannounced code ends it
    assert run_on(code, code.units[:1], True) == code.units
    long = _section("Opening.", "x" * SECTION_QUOTE_CHARS)
    assert run_on(long, long.units[:1], False) == long.units[:1]
    # An example announced by the quote doesn't use up its prose: the answer may follow it.
    example = _section("Merge them like this:", ("x = 1\n" * 200, True), "The first one wins.")
    assert example.units[-1].end > SECTION_QUOTE_CHARS
    assert run_on(example, example.units[:1], False) == example.units


def test_a_quote_runs_on_past_a_paragraph_left_in_a_chunk_of_its_own():
    texts = ["Diff files speed updates up.", "Stable gains more.", "Set PDiffs to false."]
    chunks, at = [], 0
    for text in texts:
        md = {"start": at, "section_start": 0, "source": "a.html", "level": 2}
        chunks.append(Document(page_content=text, metadata=md))
        at += len(text) + 2  # a paragraph break between chunks
    first, short, answer = chunks
    after = {id(first): short, id(short): answer}
    units = units_of(first)
    p = Passage(
        chunk=first, rank=0, units=units, context_terms=set(), dense=0.0, section_lead=True,
        text=f"{texts[0]}\n\n{texts[1]}", text_start=0, own_units=len(units), following=short,
        next_chunk=lambda c: after.get(id(c)),
    )  # fmt: skip
    quote = ExtractiveAnswerer._run_on(p, units, False)
    assert [u.text for u in quote] == texts
    assert ExtractiveAnswerer.quote_of(p, quote) == "\n\n".join(texts)
    # Another section's chunk, or none, ends it after the chunk that follows.
    other = Document(page_content=texts[2], metadata={**answer.metadata, "section_start": at})
    after[id(short)] = other
    alone = replace(p, tail=None, text=f"{texts[0]}\n\n{texts[1]}")
    assert [u.text for u in ExtractiveAnswerer._run_on(alone, units, False)] == texts[:2]
    unlinked = replace(p, tail=None, text=f"{texts[0]}\n\n{texts[1]}", next_chunk=None)
    assert [u.text for u in ExtractiveAnswerer._run_on(unlinked, units, False)] == texts[:2]
    # A next chunk of more than one paragraph is the section going on, not a paragraph left
    # alone: the quote reads no further than it (a page's footnotes may follow in its section).
    two = Document(page_content="Stable gains more.\n\nSo does Testing.", metadata=short.metadata)
    after[id(two)] = answer
    longer = replace(p, tail=None, following=two, text=f"{texts[0]}\n\n{two.page_content}")
    quoted = ExtractiveAnswerer._run_on(longer, units, False)
    assert [u.text for u in quoted] == [texts[0], "Stable gains more.", "So does Testing."]


def test_a_code_block_cut_by_the_quote_is_closed_so_the_reply_stays_prose():
    cut_end = "Use a flag:\n\n```python\n@click.option('--shout')\ndef info(shout):"
    assert closed_code(cut_end, starts_in_code=False) == cut_end + "\n```"
    cut_start = "    click.echo(rv)\n```\n\nAnd on the command line:"
    assert closed_code(cut_start, starts_in_code=True) == "```\n" + cut_start
    whole = "Run:\n\n```text\n$ info\n```\n\nDone."
    assert closed_code(whole, starts_in_code=False) == whole
    # In the reply, the closing quote mark and "[1]" come after the block, not inside it.
    p = _section("Use a flag:", ("```python\n@click.option('--shout')", True))
    p = replace(p, text="Use a flag:\n\n```python\n@click.option('--shout')", text_start=0)
    answer = ExtractiveAnswerer._compose(Standalone("q"), [(p, p.units)])
    assert answer.text.endswith("@click.option('--shout')\n```” [1]")
    assert answer.text.count("```") == 2


def test_a_quote_reads_as_its_paragraphs_not_as_the_printed_lines():
    text = (
        "Wait until the child exits and\nreturn its status. If -n is\nsupplied, wait waits"
        " for\none job.\n\n- an item\n- another\n\n```\nwait -n\nwait\n```"
    )
    code = text.index("```")
    doc = Document(page_content=text, metadata={"start": 0, "code": f"{code}-{len(text)}"})
    units = units_of(doc)
    p = Passage(
        chunk=doc, rank=0, units=units, context_terms=set(), dense=0.0, section_lead=True,
        text=text, text_start=0, own_units=len(units),
    )  # fmt: skip
    assert ExtractiveAnswerer.shown(p, units) == (
        "Wait until the child exits and return its status. If -n is supplied, wait waits for"
        " one job.\n\n- an item\n- another\n\n```\nwait -n\nwait\n```"
    )
    assert ExtractiveAnswerer.quote_of(p, units) == text  # the document's own text


def test_code_inside_an_unfinished_sentence_is_part_of_it():
    p = _section("Images hold links like", ("/a -> b", True), "so they work.", "The fact.")
    assert announces(p.units[0]) and not announces(p.units[2]) and not announces(p.units[1])
    assert announces(Unit("Run this:", 0, 9, False, 0))
    assert ExtractiveAnswerer._run_on(p, p.units[:1], False) == p.units
    done = _section("Images hold links.", ("/a -> b", True), "The fact.")
    assert ExtractiveAnswerer._run_on(done, done.units[:1], False) == done.units[:1]


def test_two_slices_of_a_document_join_when_they_overlap_or_touch():
    doc = "First paragraph here.\n\nSecond one."
    assert joined_text(doc[:21], 0, doc[15:], 15) == doc  # overlapping chunks
    assert joined_text(doc[:21], 0, doc[23:], 23) == doc  # cut at the paragraph break
    assert joined_text(doc[:10], 0, doc[23:], 23) is None  # text missing between them
    assert joined_text(doc[23:], 23, doc[:21], 0) is None  # not after it


class _Neighbours:
    """The lexicon's neighbour lookup, scripted: the chunk before each chunk."""

    def __init__(self, previous: Document | None) -> None:
        self.previous = previous

    def previous_chunk(self, chunk: Document) -> Document | None:
        return self.previous


def test_a_quote_near_the_start_of_a_section_cut_over_two_chunks_starts_at_its_opening():
    text = "The answer is yes. It holds. " + "Detail follows here. " * 3 + "The words match."
    cut = text.index("Detail")
    md = {"source": "a.html", "level": 2, "section_start": 0}
    prev = Document(page_content=text[: cut + 10], metadata={**md, "start": 0})
    chunk = Document(page_content=text[cut:], metadata={**md, "start": cut})
    units = units_of(chunk)
    p = Passage(
        chunk=chunk, rank=0, units=units, context_terms=set(), dense=0.0, section_lead=False,
        text=chunk.page_content, text_start=cut, own_units=len(units),
    )  # fmt: skip
    window = units[-1:]
    opened = ExtractiveAnswerer._opened(p, window, _Neighbours(prev))
    quote = ExtractiveAnswerer.quote_of(
        opened, ExtractiveAnswerer.quote_parts(opened, window, False)[1]
    )
    assert quote == text  # from the section's opening, overlap not repeated
    far = replace(window[0], start=window[0].start + LEAD_IN_CHARS)
    assert ExtractiveAnswerer._opened(p, [far], _Neighbours(prev)) is p  # too far in
    assert ExtractiveAnswerer._opened(p, window, _Neighbours(None)) is p
    other = Document(page_content="x", metadata={**md, "start": 0, "section_start": 0})
    title = Document(page_content=chunk.page_content, metadata={**md, "start": cut, "level": 1})
    page = replace(p, chunk=title)
    assert ExtractiveAnswerer._opened(page, window, _Neighbours(other)) is page  # a page's body


def test_a_quote_runs_on_only_in_a_section_below_the_page_title():
    assert runs_on(_section("Pre-X is a special kind.", "Most things do Y."))
    page = _section("By A. Writer, May 4.", "The fact.", level=1)  # a news article's body
    assert not runs_on(page)


def test_same_section_needs_the_same_document_and_section():
    a = {"source": "a.html", "section_start": 100}
    assert same_section(a, {"source": "a.html", "section_start": 100})
    assert not same_section(a, {"source": "a.html", "section_start": 700})
    assert not same_section(a, {"source": "b.html", "section_start": 100})
    assert not same_section({"source": "a.html"}, {"source": "a.html"})  # no sections known


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ("Who wrote the CCN article?", "author"),
        ("who is the author of this post", "author"),
        ("When was the CCN piece published?", "date"),
        ("what date was the report published", "date"),
        ("Who published the story?", "publisher"),
        ("Who wrote the malware?", None),  # not about a document
        ("When did FireEye publish its findings?", None),  # an event, not the document's date
        ("how do I set the author field in setup.py", None),
        ("When did North Korea start mining bitcoin?", None),
    ],
)
def test_questions_about_the_document_itself(question, field):
    assert asks_about_document(question) == field


def test_a_stated_date_is_found_in_its_usual_spellings():
    for text in ("Last updated March 4, 2021 3:34 PM.", "Posted 4 Mar 2021.", "(2021-03-04)"):
        assert states(text, "date", "2021-03-04"), text
    assert not states("Last updated March 14, 2021.", "date", "2021-03-04")
    assert states("By Jack  Mathis, CCN.com.", "author", "Jack Mathis")


def test_who_wrote_it_is_quoted_from_the_byline_of_that_document_only(service):
    byline = service.answer("Who wrote the CCN article?")
    assert not byline.abstained and "By Jack Mathis" in byline.citations[0].quote
    assert byline.citations[0].source == "north-korea-short-lived-bitcoin-mining.md"
    dated = service.answer("When was the CCN piece published?")
    assert "March 4, 2021" in dated.citations[0].quote
    # The article reports on a FireEye report: its author is not the article's.
    assert "Jack Mathis" not in service.answer("Who wrote the FireEye report?").text


def test_english_dictionary_missing_leaves_the_vocabulary(monkeypatch, caplog):
    import bot.answer.extractive as extractive

    def gone(name: str):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(extractive, "files", gone)
    extractive.english_word_counts.cache_clear()  # read once per process: read it again
    try:
        with caplog.at_level("WARNING"):
            assert extractive.english_dictionary() == frozenset()
        assert "English dictionary unavailable" in caplog.text
        common = load_common_words(TOKENIZER_PATH)
        assert "korea" in common and "sluggish" not in common
        assert extractive.absence_weight("left", {}) == 1.0  # every absent word counts
    finally:
        extractive.english_word_counts.cache_clear()


def test_an_everyday_word_the_corpus_never_uses_says_little_about_the_answer():
    from bot.answer.extractive import absence_weight, english_word_counts

    counts = english_word_counts()
    assert absence_weight("put", counts) == 0.0  # "where do i put it"
    assert absence_weight("left", counts) < 0.05  # "why would a bug get left alone"
    assert absence_weight("squash", counts) == 1.0  # "squash my migrations": a real gap
    assert 0.0 < absence_weight("bunch", counts) < 1.0
    assert absence_weight("kubernetes", counts) == 1.0  # no English word
