"""Layered generations: a re-index that changes few documents builds a layer over the last
full generation instead of copying every vector; readers see the same index either way."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from index import store
from index.errors import IndexNotReady
from index.pipeline import _source_states, plan_layer, reindex
from index.sentences import UNIT_VECTORS
from tests.helpers import active_view, expected_ids, index_reader

TOPICS = [
    ("Glazing pottery", "A celadon glaze turns green in a reduction kiln at cone ten."),
    ("Keeping bees", "A queen bee lays up to two thousand eggs a day in early summer."),
    ("Sourdough bread", "A sourdough starter is fed flour and water every twelve hours."),
    ("Tuning a bicycle", "Chain stretch beyond half a percent wears the cassette quickly."),
    ("Pruning roses", "Roses are pruned in late winter, just above an outward bud."),
    ("Brewing tea", "Green tea brews best with water at about eighty degrees."),
    ("Knitting socks", "A heel flap is knitted back and forth over half the stitches."),
    ("Sharpening knives", "A whetstone of grit one thousand sets a working edge."),
    ("Composting", "A compost heap needs roughly thirty parts carbon to one of nitrogen."),
    ("Birdwatching", "Swifts sleep on the wing and land only to nest."),
    ("Canoeing", "The J-stroke keeps a solo canoe straight without switching sides."),
    ("Stargazing", "The Andromeda galaxy is visible to the naked eye from dark sites."),
]


def _write(corpus: Path, i: int, extra: str = "") -> None:
    title, fact = TOPICS[i]
    body = f"# {title}\n\n{fact} {extra}\n\n## Practice\n\nPractice {title.lower()} weekly.\n"
    (corpus / f"doc{i:02d}.md").write_text(body, encoding="utf-8")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "topics"
    folder.mkdir()
    for i in range(len(TOPICS)):
        _write(folder, i)
    return folder


def _rows(settings) -> dict[str, tuple[str | None, dict]]:
    """Every chunk of the active generation: id -> (text, metadata without sentence vectors)."""
    return {
        cid: (text, {k: v for k, v in md.items() if k != UNIT_VECTORS})
        for cid, text, md in store.iter_rows(active_view(settings), ["documents", "metadatas"])
    }


def test_a_small_change_builds_a_layer_that_reads_like_a_full_build(
    make_settings, corpus: Path, tmp_path: Path, minilm
):
    settings = make_settings(corpus_dir=corpus, layer_max_share=0.5)  # 12 small documents
    first = reindex(settings, embeddings=minilm)
    _write(corpus, 2, "Rye flour makes a sourer loaf.")  # edited
    deleted = (corpus / "doc05.md").read_text(encoding="utf-8")
    (corpus / "doc05.md").unlink()
    (corpus / "doc99.md").write_text("# Rowing\n\nA rowing stroke starts at the catch.\n")
    second = reindex(settings, embeddings=minilm)

    view = active_view(settings)
    assert view.base is not None and view.base.name == first.generation == second.base
    assert view.masked == {"doc02.md", "doc05.md", "doc99.md"}
    assert (second.updated, second.deleted, second.added) == (1, 1, 1)
    assert 0 < second.embedded < second.chunks and second.reused == second.chunks - second.embedded
    assert view.top_count < second.chunks  # only the changed documents were written

    # The same corpus built in full elsewhere: the same chunks, texts and metadata...
    full = make_settings(corpus_dir=corpus, index_dir=tmp_path / "full", layer_max_share=0.0)
    reindex(full, embeddings=minilm)
    assert active_view(full).base is None
    assert _rows(settings) == _rows(full)
    assert set(_rows(settings)) == expected_ids(settings)

    # ... and the same nearest chunks, the deleted document's never among them.
    layered, plain = index_reader(settings, minilm), index_reader(full, minilm)
    gone = view.masked_ids - set(_rows(settings))  # chunks of the edited and deleted documents
    assert gone
    for query in ["sourdough rye loaf", deleted, "rowing catch", "bees eggs", "roses winter"]:
        got = [(d.id, round(s, 4)) for d, s in layered.dense_search(query, 5)]
        assert got == [(d.id, round(s, 4)) for d, s in plain.dense_search(query, 5)], query
        assert not {cid for cid, _ in got} & gone
    assert not layered.snapshot().chunks_by_id(sorted(gone))


def test_layers_stay_one_deep_and_pruning_keeps_their_base(make_settings, corpus: Path, minilm):
    settings = make_settings(corpus_dir=corpus, layer_max_share=0.5)  # 12 small documents
    base = reindex(settings, embeddings=minilm).generation
    _write(corpus, 0, "Ash glazes run.")
    one = reindex(settings, embeddings=minilm).generation
    _write(corpus, 1, "Drones do not sting.")
    two = reindex(settings, embeddings=minilm).generation
    view = active_view(settings)
    assert view.base is not None and view.base.name == base  # over the base, not over `one`
    assert view.masked == {"doc00.md", "doc01.md"}
    assert set(_rows(settings)) == expected_ids(settings)
    names = {c.name for c in store.list_generations(store.make_client(settings), "corpus")}
    assert names == {base, one, two}  # KEEP_GENERATIONS=2 keeps `one` and `two`, and their base

    # A change above LAYER_MAX_SHARE (here 16 + 16 of 24 chunks) builds a full generation.
    for i in range(2, 8):
        _write(corpus, i, "Revised.")
    full = reindex(settings, embeddings=minilm)
    assert active_view(settings).base is None and full.reused > 0
    assert set(_rows(settings)) == expected_ids(settings)
    names = {c.name for c in store.list_generations(store.make_client(settings), "corpus")}
    assert names == {full.generation, two, base}  # `two` is kept for rollback, with its base
    _write(corpus, 9, "Revised.")
    reindex(settings, embeddings=minilm)
    names = {c.name for c in store.list_generations(store.make_client(settings), "corpus")}
    assert base not in names and two not in names


def _states(rows: list[tuple[str, str, dict]]):
    return _source_states((cid, None, md) for cid, _, md in rows)


def test_plan_layer_masks_what_changed_even_without_new_text():
    rows = [
        (f"id{i}{j}", "", {"source": f"d{i}.md", "title": f"T{i}", "chunk_index": j})
        for i in range(10)
        for j in range(3)
    ]
    previous = SimpleNamespace(
        base=None, top=SimpleNamespace(name="g1"), masked=frozenset(), masked_ids=frozenset()
    )
    before = _states(rows)
    assert plan_layer(previous, before, _states(rows), chunks=30, max_share=0.5) is None

    retitled = [
        (c, t, {**md, "title": "New"} if md["source"] == "d3.md" else md) for c, t, md in rows
    ]
    plan = plan_layer(previous, before, _states(retitled), chunks=30, max_share=0.5)
    assert plan is not None and plan.base == "g1" and plan.masked == {"d3.md"}

    # 3 chunks written + 3 hidden = 20% of the corpus: above a 10% share, a full build.
    assert plan_layer(previous, before, _states(retitled), chunks=30, max_share=0.1) is None
    assert plan_layer(previous, before, _states(retitled), chunks=30, max_share=0.0) is None


def test_a_lost_base_is_reported_then_rebuilt(make_settings, corpus: Path, minilm):
    settings = make_settings(corpus_dir=corpus, layer_max_share=0.5)
    base = reindex(settings, embeddings=minilm).generation
    _write(corpus, 3, "A longer proof of the bread.")
    reindex(settings, embeddings=minilm)
    store.make_client(settings).delete_collection(base)  # e.g. removed by hand

    with pytest.raises(IndexNotReady, match="python -m index --full"):
        index_reader(settings, minilm).snapshot()
    rebuilt = reindex(settings, embeddings=minilm)
    assert rebuilt.base is None and rebuilt.embedded == rebuilt.chunks
    assert set(_rows(settings)) == expected_ids(settings)
