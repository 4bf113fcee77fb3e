"""Answer quality on the development sets, beside a plain search box on the same index.

    python -m bench.eval_devsets                  # every set in bench/devsets/, both halves
    python -m bench.eval_devsets --set faq --split heldout
    python -m bench.eval_devsets --features out.jsonl   # the decision features per question

Each set is a corpus folder and a questions.yaml (see bench/devsets/README.md). The corpus is
indexed with the real pipeline into a temporary INDEX_DIR (cached per corpus content under
.bench-cache/ so reruns are fast), then every question goes through the real chain, offline.

A set's `followups.yaml` (questions asked in a thread after earlier ones, each answered by
the chain first) is reported on rows of its own, "<set> follow-ups".

With `--site`, a set whose folder has a `site.yaml` (the whole documentation tree its pages
come from, as its Debian package installs it) is also asked against that whole tree, on a
row "<set> on site": the same questions and key phrases, the expected pages found where
`prefix` puts them. That is how the bot is used on a real site, where other pages (a
reference, a user guide, release notes) compete with the ones that hold the answer; its
"declined" is not comparable (the site may hold what an out-of-scope question asks).

With `--offtopic`, general off-topic questions (`devsets/offtopic.yaml`: trivia, cooking,
small talk; nothing of any corpus) are asked of each set's corpus, on a row
"<set> off-topic", and with `--site` of its whole tree too ("<set> off-topic on site"):
the off-topic chatter a Discord server sends, where the sets' own out-of-scope questions are
near misses about the same product.

With `--chat`, every answerable question the bot answers correctly is asked again as people
type in chat (`CHAT_VARIANTS`: a greeting and thanks, "quick question" on a line of its own,
a trailing emoji, bold, capitals, a link, "i tried googling", "pls ...??", "I was
wondering", "does anyone know", a typo, the asker's situation after the question, a
traceback pasted after it, code pasted before it, a second question after it, the asker's
situation before it, "I'm stuck" or some context on a line before it, "URGENT:", one word in
capitals, "edit: still stuck" on a line after it, "lol"): the share of those still answered
correctly, per variant. Then two of those questions in one message ("Q1? also, Q2",
consecutive pairs): the share of replies answering the first, the second, and both.

Per set and split it prints:
* answered: the answer is not a decline and cites a passage of an expected document that
  contains one of the key phrases (the fact and a supporting citation);
* declined: out-of-scope questions the bot declined;
* precision: share of citations (on answerable questions) that point into an expected document;
* search top-1 / top-4: the retriever's first chunk (or any of the first four) contains a key
  phrase: what a plain search box would show.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEVSETS = ROOT / "bench" / "devsets"
CACHE = ROOT / ".bench-cache"
DEFAULT_SET = ("default", ROOT / "corpus", ROOT / "tests" / "data" / "questions.yaml")
OUT_OF_SCOPE = {"out_of_scope", "offtopic", "absent"}
# The sets the answerer's ranking and decision are fitted on (tune halves only). markdown and
# pdf-manual were added later and stay corpora the answerer never saw, for measuring alone.
FIT_SETS = ("default", "faq", "manual", "sphinx-site")
# Beside a set's questions.yaml: follow-ups asked in a thread after earlier questions.
FOLLOWUPS = "followups.yaml"
# General off-topic questions, asked of every set's corpus with --offtopic.
OFFTOPIC = DEVSETS / "offtopic.yaml"


def norm(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").replace("“", '"').replace("”", '"').split())


@dataclass
class Item:
    id: str
    q: str
    answerable: bool
    split: str
    sources: list[str] = field(default_factory=list)
    key_phrases: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    kind: str = ""


def load_items(path: Path) -> list[Item]:
    out = []
    for i, raw in enumerate(yaml.safe_load(path.read_text(encoding="utf-8"))):
        kind = str(raw.get("kind", "answerable"))
        answerable = kind not in OUT_OF_SCOPE and raw.get("answerable", True) is not False
        out.append(
            Item(
                id=str(raw["id"]),
                q=str(raw["q"]),
                answerable=answerable,
                split=str(raw.get("split") or ("tune" if i % 2 == 0 else "heldout")),
                sources=list(raw.get("sources") or []),
                key_phrases=[str(k) for k in raw.get("key_phrases") or []],
                history=list(raw.get("history") or []),
                kind=kind,
            )
        )
    return out


@dataclass(frozen=True)
class Site:
    """A set's whole documentation tree (`site.yaml`)."""

    package: str  # the Debian package that installs it
    path: Path
    prefix: str  # where the set's corpus/ sits inside it ("faq/")


def site_of(qfile: Path) -> Site | None:
    spec = qfile.with_name("site.yaml")
    if not spec.is_file():
        return None
    raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
    return Site(str(raw["package"]), Path(raw["path"]), str(raw.get("prefix") or ""))


def sets() -> list[tuple[str, Path, Path]]:
    found = [DEFAULT_SET]
    for qfile in sorted(DEVSETS.glob("*/questions.yaml")):
        found.append((qfile.parent.name, qfile.parent / "corpus", qfile))
    return found


def holds_fact(text: str, item: Item) -> bool:
    t = norm(text)
    return any(norm(k) in t for k in item.key_phrases)


def _corpus_digest(corpus: Path) -> str:
    """Corpus files and the indexing code: a cached index is reused only when both match."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "index").rglob("*.py")):
        h.update(p.read_bytes())
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(corpus).as_posix().encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def build(name: str, corpus: Path, *, settings_overrides: dict | None = None):
    from bot.service import build_service
    from bot.settings import BotSettings as Settings
    from index.pipeline import reindex

    overrides = settings_overrides or {}
    tag = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:6]
    index_dir = CACHE / f"{name}-{_corpus_digest(corpus)}-{tag}"
    settings = Settings(_env_file=None, corpus_dir=corpus, index_dir=index_dir, **overrides)
    summary = reindex(settings)
    if summary.changed:
        print(f"[{name}] indexed: {summary.line()}", file=sys.stderr)
    return build_service(settings, build_if_missing=False)


def evaluate(
    name: str,
    service,
    qfile: Path,
    *,
    split: str | None,
    features_out=None,
    prefix: str = "",
):
    """`qfile`'s questions (of `split`) asked of set `name`'s `service` (from `build`)."""
    items = [i for i in load_items(qfile) if split in (None, i.split)]
    for i in items:  # the expected pages, where the indexed tree has them
        i.sources = [prefix + s for s in i.sources]
    results: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    failures = []
    for item in items:
        history: list[tuple[str, str]] = []
        for earlier in item.history:
            history.append((earlier, service.answer(earlier, history).text))
        answer = service.answer(item.q, history)
        r = results[item.split]
        if item.answerable:
            ok = answered(answer, item)
            r["answered"].append(ok)
            if not answer.abstained:
                r["precision"].extend(c.source in item.sources for c in answer.citations)
            if not item.history:
                docs = service.search(item.q)
                top = [d for d in docs if d.metadata.get("source") in item.sources]
                r["top1"].append(
                    bool(docs) and docs[0] in top and holds_fact(docs[0].page_content, item)
                )
                r["top4"].append(any(holds_fact(d.page_content, item) for d in top[:4]))
            if not ok:
                failures.append((item, answer))
        else:
            r["declined"].append(answer.abstained)
            if not answer.abstained:
                failures.append((item, answer))
        if features_out is not None:
            feats = getattr(answer, "features", None) or {}
            cand = answer.candidate
            correct_quote = bool(
                item.answerable
                and cand is not None
                and cand.source in item.sources
                and holds_fact(cand.quote, item)
            )
            features_out.write(
                json.dumps(
                    {
                        "set": name,
                        "id": item.id,
                        "split": item.split,
                        "answerable": item.answerable,
                        "abstained": answer.abstained,
                        "correct_quote": correct_quote,
                        "features": feats,
                    }
                )
                + "\n"
            )
    return results, failures


@dataclass
class JunkResult:
    changed: int  # answers that differ at all (answered/declined, or another passage cited)
    lost: int  # answerable questions answered correctly before and not after
    gained: int  # answerable questions answered correctly after and not before
    out_of_scope_answered: int  # out-of-scope questions declined before, answered after
    total: int


def junk_robustness(name: str, corpus: Path, qfile: Path, overrides: dict) -> JunkResult:
    """How answers move after a junk document joins the corpus.

    The junk is 5 MB of random letters and words (seeded), as a mis-dropped file would be;
    an answer "changes" when it flips between answered and declined or cites another passage;
    it is "lost" when it held the fact before and does not after.
    """
    import random
    import shutil
    import tempfile

    before = build(name, corpus, settings_overrides=overrides)
    items = [i for i in load_items(qfile) if not i.history]
    first = {i.id: before.answer(i.q) for i in items}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "corpus"
        shutil.copytree(corpus, copy)
        rng = random.Random(42)
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = [
            "".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(5000)
        ]
        text = " ".join(rng.choice(words) for _ in range(900_000))
        (copy / "zz-junk.txt").write_text(text[:5_000_000], encoding="utf-8")
        after = build(name + "-junk", copy, settings_overrides=overrides)
        result = JunkResult(0, 0, 0, 0, len(items))
        for i in items:
            a, b = first[i.id], after.answer(i.q)
            key_a = (a.abstained, [(c.source, c.start) for c in a.citations])
            key_b = (b.abstained, [(c.source, c.start) for c in b.citations])
            result.changed += key_a != key_b
            if i.answerable:
                result.lost += answered(a, i) and not answered(b, i)
                result.gained += answered(b, i) and not answered(a, i)
            else:
                result.out_of_scope_answered += a.abstained and not b.abstained
    return result


# How people type a question in a Discord server (bench for bot/framing.py, typo respelling
# and the asker's situation): each variant of a question the bot answers correctly bare
# should get a correct answer too.
def _typo(q: str) -> str:
    """Two middle letters of the question's longest word swapped ("optoin")."""
    ws = q.split(" ")
    i = max(range(len(ws)), key=lambda j: len(ws[j]) if ws[j].isalpha() else 0)
    w = ws[i]
    if len(w) >= 6:
        k = len(w) // 2
        ws[i] = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
    return " ".join(ws)


_TRACEBACK = """Traceback (most recent call last):
  File "app.py", line 3, in <module>
    main()
RuntimeError: something failed"""


def _shout(q: str) -> str:
    """The question with its longest everyday English word after the first in capitals."""
    from bot.answer.extractive import RARE_COUNT, english_word_counts

    counts = english_word_counts()
    ws = q.split()
    at = [i for i in range(1, len(ws)) if ws[i].isalpha() and ws[i].islower()]
    at = [i for i in at if counts.get(ws[i], 0) >= RARE_COUNT]
    if not at:
        return q
    i = max(at, key=lambda j: len(ws[j]))
    return " ".join(ws[:i] + [ws[i].upper()] + ws[i + 1 :])


CHAT_VARIANTS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("greeting and thanks", lambda q: f"hey everyone, {q} thanks in advance!"),
    ("announced on a line of its own", lambda q: f"quick question\n{q}"),
    ("emoji", lambda q: f"{q} 🙏"),
    ("bold", lambda q: f"**{q}**"),
    ("capitals", str.upper),
    ("a link", lambda q: f"{q} https://example.org/docs/page.html"),
    ("searched already", lambda q: f"{q}\ni tried googling but found nothing"),
    ("insistent", lambda q: f"pls {q}??" if q.endswith("?") else f"pls {q}"),
    ("wondering", lambda q: f"I was wondering, {q}"),
    ("does anyone know", lambda q: f"does anyone know {q}"),
    ("a typo", _typo),
    ("the asker's situation", lambda q: f"{q if q.endswith('?') else q + '?'} im on windows 10"),
    ("a traceback pasted after", lambda q: f"{q}\n```\n{_TRACEBACK}\n```"),
    (
        "code pasted before",
        lambda q: f"here is my code:\n```py\nx = load(path)\nprint(x)\n```\n{q}",
    ),
    ("a second question after", lambda q: f"{q} also, is there a changelog somewhere?"),
    ("the asker's situation before", lambda q: f"im on windows 10 with the latest version. {q}"),
    (
        "stuck on a line before",
        lambda q: f"I've been reading the docs for a while and I'm stuck.\n{q}",
    ),
    ("a line of context before", lambda q: f"I followed the tutorial step by step\n{q}"),
    ("a shouted label", lambda q: f"URGENT: {q}"),
    ("a shouted word", _shout),
    ("an edit line after", lambda q: f"{q}\nedit: still stuck"),
    ("laughter", lambda q: f"{q} lol"),
)


def chat_robustness(service, qfile: Path, *, split: str | None) -> dict[str, list[bool]]:
    """Per chat variant: for every answerable question (no history) answered correctly
    bare, whether the variant is answered correctly too. And two such questions asked in
    one message ("Q1? also, Q2", consecutive pairs): is each answered in the reply."""
    kept: dict[str, list[bool]] = defaultdict(list)
    good: list[Item] = []
    for item in load_items(qfile):
        if split not in (None, item.split) or not item.answerable or item.history:
            continue

        def correct(question: str, item: Item = item) -> bool:
            return answered(service.answer(question, []), item)

        if correct(item.q):
            good.append(item)
            for label, frame in CHAT_VARIANTS:
                kept[label].append(correct(frame(item.q)))
    for first, second in zip(good[::2], good[1::2], strict=False):
        asked = first.q if first.q.rstrip().endswith("?") else f"{first.q}?"
        reply = service.answer(f"{asked} also, {second.q}", [])
        kept["two questions: the first"].append(answered(reply, first))
        kept["two questions: the second"].append(answered(reply, second))
        kept["two questions: both"].append(answered(reply, first) and answered(reply, second))
    return kept


def answered(answer, item: Item) -> bool:
    """Does the answer cite the fact from one of the item's expected documents?"""
    return not answer.abstained and any(
        c.source in item.sources and holds_fact(c.quote, item) for c in answer.citations
    )


def rate(values: list) -> str:
    if not values:
        return "-"
    return f"{sum(values)}/{len(values)} ({sum(values) / len(values):.0%})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", action="append", help="only these sets (default: all)")
    p.add_argument("--split", choices=["tune", "heldout"], help="only this half")
    p.add_argument("--features", type=Path, help="write per-question decision features (JSONL)")
    p.add_argument("--failures", action="store_true", help="print the questions that failed")
    p.add_argument("--chunk-size", type=int, help="CHUNK_SIZE for the dev indexes")
    p.add_argument("--chunk-overlap", type=int, help="CHUNK_OVERLAP for the dev indexes")
    p.add_argument("--k", type=int, help="RETRIEVAL_K")
    p.add_argument("--mode", choices=["hybrid", "dense"], help="RETRIEVAL_MODE")
    p.add_argument(
        "--junk", action="store_true", help="also: answers that change when a junk file is added"
    )
    p.add_argument(
        "--offtopic",
        action="store_true",
        help="also: the general off-topic questions (devsets/offtopic.yaml) asked of each corpus",
    )
    p.add_argument(
        "--chat",
        action="store_true",
        help="also: correct answers kept when the question is typed as in chat (greeting, typo)",
    )
    p.add_argument(
        "--site",
        action="store_true",
        help="also: each set with a site.yaml asked against its whole documentation tree",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = args.features.open("w", encoding="utf-8") if args.features else None
    rows = []
    for name, corpus, qfile in sets():
        if args.set and name not in args.set:
            continue
        overrides = {
            key: value
            for key, value in (
                ("chunk_size", args.chunk_size),
                ("chunk_overlap", args.chunk_overlap),
                ("retrieval_k", args.k),
                ("retrieval_mode", args.mode),
            )
            if value is not None
        }
        service = build(name, corpus, settings_overrides=overrides)
        results, failures = evaluate(name, service, qfile, split=args.split, features_out=out)
        reported = [(name, results)]
        followups = qfile.with_name(FOLLOWUPS)
        if followups.is_file():
            # Thread follow-ups, on rows of their own (no search-box column: they have
            # history); not decision-fitting data.
            more, more_failures = evaluate(name, service, followups, split=args.split)
            reported.append((f"{name} follow-ups", more))
            failures += more_failures
        if args.offtopic:
            more, more_failures = evaluate(name, service, OFFTOPIC, split=args.split)
            reported.append((f"{name} off-topic", more))
            failures += more_failures
        site = site_of(qfile) if args.site else None
        if site is not None and not site.path.is_dir():
            print(f"[{name}] no site at {site.path}: apt-get install {site.package}")
        elif site is not None:
            on_site = build(f"{name}-site", site.path, settings_overrides=overrides)
            for label, questions in [("on site", qfile)] + (
                [("off-topic on site", OFFTOPIC)] if args.offtopic else []
            ):
                more, more_failures = evaluate(
                    f"{name}-site", on_site, questions, split=args.split, prefix=site.prefix
                )
                reported.append((f"{name} {label}", more))
                failures += more_failures
        for label, res in reported:
            for split in sorted(res):
                r = res[split]
                rows.append(
                    (
                        label,
                        split,
                        rate(r["answered"]),
                        rate(r["declined"]),
                        rate(r["precision"]),
                        rate(r["top1"]),
                        rate(r["top4"]),
                    )
                )
        if args.junk:
            j = junk_robustness(name, corpus, qfile, overrides)
            print(
                f"[{name}] junk document added: {j.changed}/{j.total} answers changed; "
                f"{j.lost} correct answers lost, {j.gained} gained; "
                f"{j.out_of_scope_answered} out-of-scope questions answered that were declined"
            )
        if args.chat:
            kept = chat_robustness(service, qfile, split=args.split)
            print(f"[{name}] typed as in chat, correct answers kept: " + "; ".join(
                f"{label} {rate(v)}" for label, v in kept.items()
            ))  # fmt: skip
        if args.failures:
            for item, answer in failures:
                got = re.sub(r"\s+", " ", answer.text)[:160]
                print(f"  FAIL {name}/{item.id} [{item.split}] {item.q!r} -> {got}")
    header = ("set", "split", "answered", "declined", "precision", "search top-1", "top-4")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
