"""render.py: Discord limits, splitting, mention neutralising (examples + hypothesis properties)."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from bot.discord import render
from bot.discord.render import (
    Payload,
    neutralize_mentions,
    render_answer,
    render_sources,
    split_message,
    thread_name,
    truncate,
)
from bot.errors import fallback_note, user_text
from bot.models import Answer, Citation

LIVE_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>", re.IGNORECASE)
MARKER = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
MD_LINK = re.compile(r"\[[^\[\]\n]{1,40}\]\(https?://[a-z./]{1,40}\)")


def assert_within_limits(payloads: list[Payload]) -> None:
    assert payloads
    for p in payloads:
        assert p.content or p.embeds
        assert len(p.content) <= render.CONTENT_MAX
        assert len(p.embeds) <= render.EMBEDS_MAX
        total = 0
        for e in p.embeds:
            assert len(e.get("title", "")) <= render.EMBED_TITLE_MAX
            assert len(e.get("description", "")) <= render.EMBED_DESCRIPTION_MAX
            assert len(e.get("footer", {}).get("text", "")) <= render.FOOTER_MAX
            fields = e.get("fields", [])
            assert len(fields) <= render.FIELDS_MAX
            for f in fields:
                assert 0 < len(f["name"]) <= render.FIELD_NAME_MAX
                assert 0 < len(f["value"]) <= render.FIELD_VALUE_MAX
            total += render._embed_size(e)
        assert total <= render.EMBED_TOTAL_MAX
        p.discord_embeds()  # discord.py accepts them


def fences(text: str) -> int:
    return text.count("```")


# --- mentions -----------------------------------------------------------------------------


def test_neutralize_mentions_examples():
    for raw in [
        "@everyone look",
        "hi @here",
        "<@123456789012345678>",
        "<@!123456789012345678>",
        "<@&123456789012345678>",
        "@\u200beveryone",
        "@ev\u200beryone",
        "<@12\u200b34>",
        "@\u2060here",
        "@EVERYONE",
    ]:
        out = neutralize_mentions(raw)
        assert not LIVE_MENTION.search(out), (raw, out)
    assert neutralize_mentions("mail me at a@b.c") == "mail me at a@b.c"
    assert neutralize_mentions("plain text [1]") == "plain text [1]"


MENTION_BITS = st.sampled_from(
    ["@", "<", ">", "!", "&", "1", "2", "everyone", "here", "\u200b", "\u2060", "\ufeff", " ", "x"]
)


@given(st.lists(MENTION_BITS, max_size=30).map("".join))
def test_no_live_mention_survives(text):
    assert not LIVE_MENTION.search(neutralize_mentions(text))


@given(st.text(max_size=300))
def test_no_live_mention_survives_any_text(text):
    assert not LIVE_MENTION.search(neutralize_mentions(text))


# --- splitting ------------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "word",
        "a",
        "longerword",
        "[1]",
        "[2, 3]",
        "[12]",
        "[see](https://ex.am/ple)",
        ".",
        "!",
        " ",
        " ",
        " ",
        "\n",
        "\n\n",
        "x" * 50,
        "@everyone",
        "<@123>",
    ]
)
CODE = st.lists(
    st.sampled_from(["print(1)", "x = [1]", "y", "\n", " ", "z" * 40]), max_size=200
).map(lambda parts: "```py\n" + "".join(parts) + "\n```")


@st.composite
def documents(draw) -> str:
    parts = draw(st.lists(st.one_of(st.lists(WORDS, max_size=300).map("".join), CODE), max_size=8))
    return "\n\n".join(parts)


@settings(max_examples=150, deadline=None)
@given(documents(), st.integers(min_value=60, max_value=2000))
# Found by hypothesis: the code-block branch cut "x = [1]" inside the marker.
@example("```py\n" + "z" * 44 + "x = [1]\n```", 60)
def test_split_properties(text, limit):
    chunks = split_message(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    for c in chunks:
        assert fences(c) % 2 == 0, c  # no ``` block left open across messages
    joined = "\n".join(chunks)
    # Every [n] marker and markdown link arrives whole in some message.
    for pattern in (MARKER, MD_LINK):
        expected = [m.group(0) for m in pattern.finditer(text)]
        got = [m.group(0) for c in chunks for m in pattern.finditer(c)]
        assert sorted(got) == sorted(expected)

    # Nothing but whitespace and re-opened fences is added or lost.
    def squash(s: str) -> str:
        return re.sub(r"```\w*|\s", "", s)

    assert squash(joined) == squash(text)


def test_split_prefers_paragraphs():
    a, b = "A" * 30 + ".", "B" * 30 + "."
    assert split_message(f"{a}\n\n{b}", 50) == [a, b]


def test_split_keeps_code_block_whole_when_it_fits():
    text = "intro " * 20 + "\n\n```py\n" + "x = 1\n" * 30 + "```\n\nafter"
    chunks = split_message(text, 300)
    block = "```py\n" + "x = 1\n" * 30 + "```"
    assert len(chunks) == 2 and chunks[0] == ("intro " * 20).strip()
    assert chunks[1].startswith(block)


def test_split_reopens_long_code_block_with_language():
    text = "```python\n" + "value = compute(1)\n" * 300 + "```"
    chunks = split_message(text, 2000)
    assert len(chunks) > 1
    for c in chunks:
        assert c.startswith("```python\n") and c.endswith("```") and len(c) <= 2000
    assert sum(c.count("value = compute(1)") for c in chunks) == 300


def test_truncate_word_boundary():
    assert truncate("short", 10) == "short"
    out = truncate("the quick brown fox jumps over", 16)
    assert out == "the quick brown…" and len(out) <= 16


# --- answers --------------------------------------------------------------------------------


def citation(n: int, **kw) -> Citation:
    base = dict(n=n, title=f"Doc {n}", source=f"doc{n}.md", quote="Bitcoin mining uses energy.")
    base.update(kw)
    return Citation(**base)


def test_answer_sources_on_last_message():
    long_text = " ".join(f"Sentence number {i} says something [1]." for i in range(200))
    answer = Answer(
        question="q",
        text=long_text,
        citations=[
            citation(1, url="https://example.com/a", publisher="Example News", date="2021-03-04"),
            citation(2, page=3, quote="A quote " * 400),
        ],
    )
    payloads = render_answer(answer)
    assert len(payloads) > 1
    assert_within_limits(payloads)
    assert all(not p.embeds for p in payloads[:-1])
    (embed,) = payloads[-1].embeds
    assert embed["title"] == "Sources"
    first, second = embed["fields"]
    assert first["name"] == "[1] Doc 1"
    assert "Example News · 2021-03-04" in first["value"]
    assert "> Bitcoin mining uses energy." in first["value"]
    assert "https://example.com/a" in first["value"]
    assert "p. 3" in second["value"] and "`doc2.md`" in second["value"]
    assert "…" in second["value"]  # long quote truncated with an ellipsis
    assert sum(p.content.count("[1]") for p in payloads) == 200


def test_a_heading_read_from_html_shows_without_spaces_before_punctuation():
    chunk = Document(
        page_content="Some packages are marked as Essential.",
        metadata={
            "source": "pkg-basics.html",
            "title": "Chapter 7. Basics",
            "section": "Chapter 7. Basics › 7.7. What is an Essential , Required , or Extra "
            "package ? › .deb files ( binary )",
        },
    )
    c = Citation.of_chunk(1, chunk, quote=chunk.page_content, start=0, end=38)
    assert c.heading_path == (
        "Chapter 7. Basics › 7.7. What is an Essential, Required, or Extra package? "
        "› .deb files (binary)"
    )
    (payload,) = render_answer(Answer(question="q", text="“x” [1]", citations=[c]))
    assert (
        "What is an Essential, Required, or Extra package?"
        in (payload.embeds[0]["fields"][0]["value"])
    )


def test_declined_answer_shows_nearest_sources():
    answer = Answer(question="q", text="", abstained=True, citations=[citation(1)])
    (payload,) = render_answer(answer)
    assert payload.content == user_text("not_found")
    assert payload.embeds[0]["title"] == "Nearest sources"


def test_fallback_mode_note_and_mentions_defused():
    answer = Answer(
        question="q",
        text="Hey @everyone see <@42> [1]",
        mode="extractive-fallback",
        citations=[citation(1, title="@here title", quote="<@&99> said")],
    )
    (payload,) = render_answer(answer)
    assert fallback_note() in payload.content
    assert not LIVE_MENTION.search(payload.content)
    field = payload.embeds[0]["fields"][0]
    assert not LIVE_MENTION.search(field["name"] + field["value"])


def test_many_citations_spill_within_limits():
    cites = [
        citation(i, title="T" * 300, quote="q " * 600, publisher="P" * 300) for i in range(1, 80)
    ]
    payloads = render_answer(Answer(question="q", text="Answer [1].", citations=cites))
    assert_within_limits(payloads)
    names = [f["name"] for p in payloads for e in p.embeds for f in e["fields"]]
    assert len(names) == 79


def test_bare_urls_do_not_preview():
    (payload,) = render_answer(
        Answer(question="q", text="See https://example.com/x. And [a](https://e.com).")
    )
    assert "<https://example.com/x>." in payload.content
    assert "[a](<https://e.com>)" in payload.content


def test_quoted_code_and_comment_lines_show_as_written():
    text = (
        '“Add a line like Acquire::http::proxy "http://proxy:3128".\n\n'
        "# preprocess CDPATH\n_cdpath=${CDPATH}\n\n"
        '```python\n# a comment\nclick.launch("https://click.example/")\n```\n\n'
        "Or `open https://inline.example/` it.” [1]"
    )
    (payload,) = render_answer(Answer(question="q", text=text))
    assert '"<http://proxy:3128>"' in payload.content  # prose: no preview card
    assert "\\# preprocess CDPATH" in payload.content  # a comment line, not a heading
    # Code is left exactly as quoted: Discord neither previews nor formats inside it.
    assert '```python\n# a comment\nclick.launch("https://click.example/")\n```' in (
        payload.content
    )
    assert "`open https://inline.example/`" in payload.content


CITATIONS = st.builds(
    Citation,
    n=st.integers(1, 99),
    title=st.text(max_size=400),
    source=st.text(min_size=1, max_size=300),
    quote=st.text(max_size=3000),
    page=st.none() | st.integers(1, 5000),
    publisher=st.none() | st.text(max_size=300),
    date=st.none() | st.text(max_size=40),
    url=st.none() | st.just("https://example.com/") | st.text(max_size=50),
)


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(max_size=6000) | documents(),
    citations=st.lists(CITATIONS, max_size=40),
    abstained=st.booleans(),
    mode=st.sampled_from(["extractive", "llm", "extractive-fallback"]),
)
def test_any_answer_renders_within_limits(text, citations, abstained, mode):
    answer = Answer(question="q", text=text, citations=citations, abstained=abstained, mode=mode)
    payloads = render_answer(answer)
    assert_within_limits(payloads)
    for p in payloads:
        assert not LIVE_MENTION.search(p.content)
        for e in p.embeds:
            for f in e["fields"]:
                assert not LIVE_MENTION.search(f["name"] + f["value"])
    if citations:
        assert payloads[-1].embeds


# --- threads and admin text -----------------------------------------------------------------


@given(st.text(max_size=500))
def test_thread_name(question):
    name = thread_name(question)
    assert 0 < len(name) <= 100 and "\n" not in name
    assert not LIVE_MENTION.search(name)


def test_thread_name_example():
    assert thread_name("<@1> What is **proof of work**?") == "What is proof of work?"


def test_render_sources_bounded():
    docs = [{"source": f"d{i}.md", "title": f"Title {i} " * 10, "chunks": i} for i in range(500)]
    embed = render_sources(docs, {"documents": 500, "chunks": 9999, "built_at": 1_700_000_000})
    assert len(embed["description"]) <= render.EMBED_DESCRIPTION_MAX
    assert "… and" in embed["description"] and "<t:1700000000:f>" in embed["description"]


def test_render_sources_iso_built_at():
    embed = render_sources(
        [], {"documents": 0, "chunks": 0, "built_at": "2023-11-14T22:13:20+00:00"}
    )
    assert "<t:1700000000:f>" in embed["description"]
