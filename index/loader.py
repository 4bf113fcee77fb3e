"""Files -> SourceDoc: read each supported file, extract and clean its text and metadata.

Supported: .txt .md .markdown .html .htm .pdf, and through `index/formats/` .mdx .rst
.rest .ipynb .docx. A file that cannot be used becomes a
`SkippedFile` (and a warning), never an exception that stops the whole corpus.

Decoding policy: text formats must be UTF-8 (a UTF-8 BOM is fine; a UTF-16 BOM is honoured).
There is deliberately no cp1252/latin-1 fallback: almost any byte string "decodes" as
cp1252, so a guess would silently index mojibake. HTML may instead declare its charset in a
<meta> tag, which is used when the bytes are not UTF-8.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import multiprocessing
import os
import posixpath
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import yaml
from bs4.dammit import EncodingDetector

from index import files
from index.documents import SkippedFile, SourceDoc
from index.errors import ConfigError, DocumentError, NotContent
from index.formats import Parsed as _Parsed
from index.formats import first_heading, first_line, one_line
from index.formats.docx import parse_docx
from index.formats.mdx import mdx_to_markdown
from index.formats.notebook import parse_notebook
from index.formats.pdf import parse_pdf
from index.formats.rst import parse_rst
from index.html import Tag, get_text, parse_html, parse_page
from index.ignore import IgnoreRules
from index.parsed import NotContentEntry, ParseCache
from index.structure import JUNK, TextBuilder, fenced_runs, markdown_blocks, normalize_text

log = logging.getLogger(__name__)

# Parsing runs in worker processes from this many files on (fewer don't repay the pool).
PARALLEL_MIN_FILES = 16
MAX_LOAD_WORKERS = 4  # each holds one page's parse tree at a time
TEXT_EXTS = frozenset({".txt"})
MARKDOWN_EXTS = frozenset({".md", ".markdown"})
HTML_EXTS = frozenset({".html", ".htm"})
PDF_EXTS = frozenset({".pdf"})
MDX_EXTS = frozenset({".mdx"})
RST_EXTS = frozenset({".rst", ".rest"})
NOTEBOOK_EXTS = frozenset({".ipynb"})
DOCX_EXTS = frozenset({".docx"})
SUPPORTED_EXTS = (
    TEXT_EXTS
    | MARKDOWN_EXTS
    | HTML_EXTS
    | PDF_EXTS
    | MDX_EXTS
    | RST_EXTS
    | NOTEBOOK_EXTS
    | DOCX_EXTS
)

METADATA_KEYS = ("publisher", "site", "author", "date", "url")
MAX_METADATA_CHARS = 300

# --- normalisation ----------------------------------------------------------------------

_JUNK = JUNK


# --- site debris (plain text and markdown) ----------------------------------------------

# Whole-line matches only, so a real sentence that merely contains these words survives.
_DEBRIS_LINE = re.compile(
    r"""^(?:
        Loading(?:\.\.\.|\u2026)
      | [\u23f4\u2190\u25c0<«‹]?\s*Back\ to\ Blog
      | Featured\ [Ii]mage\ (?:from|via|by|courtesy\ of)\ [^.!?]{1,80}\.?
      | (?:Image|Photo)(?:\ [Cc]redits?)?:\ .{1,150}
      | Last\ [Uu]pdated:?\ [A-Z][a-z]+\ \d{1,2},\ \d{4}(?:\ \d{1,2}:\d{2}\ ?[AP]M)?
    )$""",
    re.X,
)
_BREADCRUMB_ROOTS = frozenset({"home", "blog", "news"})


def _is_breadcrumb(line: str, next_line: str | None) -> bool:
    """'Home / Section / Title' above the article: its last part is the title line below it,
    or it starts at a site root. 'Input / Output' alone is a title, not a breadcrumb."""
    parts = [p.strip() for p in line.split(" / ")]
    if len(parts) < 2 or not all(parts) or line.startswith("#") or next_line is None:
        return False
    return parts[-1] == next_line or parts[0].lower() in _BREADCRUMB_ROOTS


def strip_debris(text: str) -> str:
    """Drop site chrome lines: a top breadcrumb, 'Loading...', captions, a repeated title."""
    lines = text.split("\n")
    nonempty = [i for i, line in enumerate(lines) if line.strip()]
    if nonempty:
        first = lines[nonempty[0]].strip()
        second = lines[nonempty[1]].strip() if len(nonempty) > 1 else None
        if _is_breadcrumb(first, second):
            del lines[nonempty[0]]
    kept = [line for line in lines if not _DEBRIS_LINE.match(line.strip())]
    # A leading exact duplicate of the title line (page title + article heading).
    nonempty = [i for i, line in enumerate(kept) if line.strip()]
    if len(nonempty) >= 2 and kept[nonempty[0]].strip() == kept[nonempty[1]].strip():
        del kept[nonempty[1]]
    return normalize_text("\n".join(kept))


# --- helpers ----------------------------------------------------------------------------


def _iso_date(value: object) -> str | None:
    """yyyy-mm-dd when the value is recognisably a date, else the trimmed string."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    if not text:
        return None
    with contextlib.suppress(ValueError):
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    with contextlib.suppress(ValueError):
        return dt.date.fromisoformat(text[:10]).isoformat()
    for fmt in ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y"):
        with contextlib.suppress(ValueError):
            return dt.datetime.strptime(text, fmt).date().isoformat()
    return text


def _http_url(value: object) -> str | None:
    text = str(value).strip()
    return text if re.match(r"https?://\S+$", text, re.I) else None


def _clean_metadata(raw: dict[str, object]) -> dict[str, str]:
    """Only known keys, only non-empty str values (Chroma rejects None)."""
    out: dict[str, str] = {}
    for key in METADATA_KEYS:
        value = _scalar(raw.get(key))
        if value is None:
            continue
        if key == "date":
            text = _iso_date(value)
        elif key == "url":
            text = _http_url(value)
        else:
            text = " ".join(str(value).split())
        if text:
            out[key] = text[:MAX_METADATA_CHARS]
    return out


_SCALARS = (str, int, float, dt.date)


def _scalar(value: object) -> object | None:
    """A scalar, or a flat list of scalars joined; None for anything nested.

    Nested values are refused before str() ever sees them: a YAML alias bomb is a few
    hundred bytes that str() would expand to gigabytes.
    """
    if isinstance(value, _SCALARS) and not isinstance(value, bool):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, _SCALARS) for v in value):
        joined = ", ".join(" ".join(str(v).split()) for v in value[:20])
        return joined.strip(", ") or None
    return None


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ValueError("not valid UTF-16 despite its byte order mark") from exc
    if b"\x00" in raw:
        raise ValueError("binary file (contains NUL bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from exc
    if len(_JUNK.findall(text)) > max(8, len(text) // 100):
        raise ValueError("binary file (control characters)")
    return text


# --- formats ----------------------------------------------------------------------------


def _parse_plain(raw: bytes, stem: str) -> _Parsed:
    text = strip_debris(normalize_text(_decode(raw)))
    return _Parsed(text, first_line(text) or stem)


_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


def _strip_debris_keeping_code(text: str) -> str:
    """`strip_debris` on the prose of a Markdown text; fenced code passes untouched."""
    blocks: list[str] = []
    out: list[str] = []
    for run in fenced_runs(text.split("\n")):
        if run.fence is None:
            out.extend(run.lines)
        else:  # an unclosed fence runs to the end, as in CommonMark
            out.append(f"\ue000{len(blocks)}\ue001")
            blocks.append("\n".join(run.lines))
    cleaned = strip_debris("\n".join(out))
    return _PLACEHOLDER.sub(lambda m: blocks[int(m.group(1))], cleaned)


def _parse_markdown(raw: bytes, stem: str) -> _Parsed:
    text = _decode(raw).replace("\r\n", "\n").replace("\r", "\n").lstrip("\n")
    front: dict[str, object] = {}
    if re.match(r"---[ \t]*\n", text):
        header_start = text.index("\n") + 1
        end = _FRONT_MATTER_END.search(text, header_start)
        if end is None:
            raise ValueError("invalid front matter: no closing '---' line")
        try:
            parsed = yaml.safe_load(text[header_start : end.start()])
        except yaml.YAMLError as exc:
            raise ValueError(f"invalid front matter: {' '.join(str(exc).split())}") from exc
        if parsed is not None and not isinstance(parsed, dict):
            raise ValueError("invalid front matter: expected 'key: value' lines")
        front = {str(k).lower(): v for k, v in (parsed or {}).items()}
        text = text[end.end() :]
    builder = TextBuilder()
    markdown_blocks(_strip_debris_keeping_code(text), builder)
    body, sections, code = builder.build()
    title = _scalar(front.get("title"))
    title = one_line(str(title)) if title is not None else ""
    title = (
        title
        or first_heading(sections, 1)
        or first_heading(sections)
        or first_line(body, skip=("```", "~~~", "#"))
    )
    title = title or stem
    return _Parsed(body, title, _clean_metadata(front), sections=sections, code=code)


def _meta(metas: list[Tag], *, prop: str | None = None, name: str | None = None) -> str | None:
    """The content of the first <meta property=prop> (or name=name) of the page's `metas`."""
    key, value = ("property", prop) if prop else ("name", name)
    tag = next((t for t in metas if t.get(key) == value), None)
    content = tag.get("content") if tag is not None else None
    return content.strip() if isinstance(content, str) and content.strip() else None


class _NotContentPage(ValueError):
    pass


# Index and table-of-contents pages are (nearly) all links: not documents to quote.
MAX_LINK_DENSITY = 0.7
MIN_LINKS_FOR_INDEX_PAGE = 10
MIN_PROSE_OF_CONTENT_PAGE = 500  # ...unless the page also has real prose (a landing page)


def _parse_html(raw: bytes, stem: str) -> _Parsed:
    try:
        markup = _decode(raw)
    except ValueError as exc:
        declared = EncodingDetector.find_declared_encoding(raw, is_html=True)
        if b"\x00" in raw or not declared:
            raise
        try:
            markup = raw.decode(declared)
        except (LookupError, UnicodeDecodeError):
            raise exc from None
    doc = parse_html(markup)

    title_tag = next(doc.iter("title"), None)
    head_title = get_text(title_tag, " ", strip=True) if title_tag is not None else ""
    canonical = next((t for t in doc.iter("link") if t.get("rel") == "canonical"), None)
    href = canonical.get("href") if canonical is not None else None
    metas = list(doc.iter("meta"))  # one walk of the page, not one per field
    meta: dict[str, object] = {
        "publisher": _meta(metas, prop="og:site_name"),
        "author": _meta(metas, name="author"),
        "date": _meta(metas, prop="article:published_time") or _meta(metas, name="date"),
        "url": (_http_url(href) if isinstance(href, str) else None) or _meta(metas, prop="og:url"),
    }
    og_title = _meta(metas, prop="og:title")
    builder = TextBuilder()
    facts = parse_page(doc, builder)
    text, sections, code = builder.build()
    links = sum(1 for _ in doc.iter("a"))
    prose = len(text) - sum(b - a for a, b in code) - sum(s.body_start - s.start for s in sections)
    if (
        facts["link_density"] >= MAX_LINK_DENSITY
        and links >= MIN_LINKS_FOR_INDEX_PAGE
        and prose < MIN_PROSE_OF_CONTENT_PAGE
    ):
        raise _NotContentPage(
            f"index or contents page ({facts['link_density']:.0%} of its text is links)"
        )
    refresh = next((t for t in metas if str(t.get("http-equiv") or "").lower() == "refresh"), None)
    target = str(refresh.get("content") or "") if refresh is not None else ""
    if "url=" in target.lower().replace(" ", "") and prose < MIN_PROSE_OF_CONTENT_PAGE:
        # "Redirecting to macro.quote.html...": the page it points at is the document.
        url = target.partition("=")[2].strip(" '\"")
        raise _NotContentPage(f"a redirect to {url}")
    if not text.strip():
        if facts["visible_text"]:  # a page of navigation only: not a document
            raise _NotContentPage("only navigation, no content")
        raise ValueError("no text content")  # e.g. a page rendered by JavaScript
    # The page's own h1 names it; <title> usually adds the site ("Page — Project 1.2 docs").
    title = facts["h1"] or og_title or head_title or first_heading(sections)
    title = one_line(title)
    return _Parsed(text, title or stem, _clean_metadata(meta), sections=sections, code=code)


def _parse_mdx(raw: bytes, stem: str) -> _Parsed:
    """Docusaurus MDX: imports, exports and JSX tags go (their text stays), then Markdown."""
    return _parse_markdown(mdx_to_markdown(_decode(raw)).encode(), stem)


_PARSERS: dict[str, Callable[[bytes, str], _Parsed]] = {
    **dict.fromkeys(TEXT_EXTS, _parse_plain),
    **dict.fromkeys(MARKDOWN_EXTS, _parse_markdown),
    **dict.fromkeys(HTML_EXTS, _parse_html),
    **dict.fromkeys(PDF_EXTS, parse_pdf),
    **dict.fromkeys(MDX_EXTS, _parse_mdx),
    **dict.fromkeys(RST_EXTS, parse_rst),
    **dict.fromkeys(NOTEBOOK_EXTS, parse_notebook),
    **dict.fromkeys(DOCX_EXTS, parse_docx),
}


# --- public API -------------------------------------------------------------------------


def load_file(
    path: Path, *, root: Path, max_bytes: int, cache: ParseCache | None = None
) -> SourceDoc:
    """Load one file; raise DocumentError with a short reason when it cannot be used.
    With a `cache`, bytes parsed before (by this parsing code) are not parsed again."""
    source = files.source_name(path, root)  # valid UTF-8 even for undecodable names
    stem = files.safe_text(path.stem)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTS:
        raise DocumentError(source, f"unsupported file type {ext or '(none)'}")
    try:
        raw = files.read_capped(path, max_bytes, root=root)  # regular files inside root only
    except files.FileRejected as exc:
        raise DocumentError(source, str(exc)) from exc
    except OSError as exc:
        raise DocumentError(source, f"cannot read file: {exc.strerror or exc}") from exc
    if not raw:
        raise DocumentError(source, "empty file")

    key = cache.key(raw, ext, stem) if cache is not None else ""
    cached = cache.get(key) if cache is not None else None
    if isinstance(cached, NotContentEntry):
        raise NotContent(source, str(cached))
    try:
        parsed = cached or _PARSERS[ext](raw, stem)
    except _NotContentPage as exc:
        if cache is not None:
            cache.put(key, NotContentEntry(str(exc)))
        raise NotContent(source, str(exc)) from exc
    except ValueError as exc:
        raise DocumentError(source, str(exc)) from exc
    except Exception as exc:  # a parser bug must cost one file, not the whole index
        log.debug("unexpected error parsing %s", source, exc_info=True)
        raise DocumentError(source, f"cannot parse: {exc or type(exc).__name__}") from exc
    if not parsed.text.strip():
        raise DocumentError(source, "no text content")
    if cache is not None and cached is None:
        cache.put(key, parsed)
    return SourceDoc(
        source=source,
        title=parsed.title,
        text=parsed.text,
        sha256=hashlib.sha256(raw).hexdigest(),
        metadata=parsed.metadata,
        pages=parsed.pages,
        sections=parsed.sections,
        code=parsed.code,
    )


# Formats a generator renders into an .html page of the same name in the same folder
# (AsciiDoc's .txt, Markdown, reStructuredText): with the page there, the file is its source.
PAGE_SOURCE_EXTS = TEXT_EXTS | MARKDOWN_EXTS | RST_EXTS


def page_sources(rels: list[str]) -> dict[str, str]:
    """Source files beside the HTML page made from them ('git-commit.txt' beside
    'git-commit.html'), each mapped to its page. The page is indexed, not its source: the
    page has the includes resolved, the headings and the anchors a citation links to, and
    the two would otherwise answer every question twice."""
    paths = {r: PurePosixPath(r) for r in rels}

    def stem(p: PurePosixPath) -> str:
        return str(p.with_suffix("")).casefold()

    pages = {stem(p): r for r, p in paths.items() if p.suffix.lower() in HTML_EXTS}
    return {
        r: pages[stem(p)]
        for r, p in paths.items()
        if p.suffix.lower() in PAGE_SOURCE_EXTS and stem(p) in pages
    }


# AsciiDoc `include::file[]` and reST `.. include:: file` lines (no attribute references).
_INCLUDE = re.compile(r"^(?:include::([^\[\s{}]+)\[|\.\.\s+include::\s*([^\s{}]+)\s*$)", re.M)


def included_sources(
    corpus_dir: Path, rendered: dict[str, str], rels: set[str], *, max_bytes: int
) -> dict[str, str]:
    """Files a page's source includes, directly or through another include (AsciiDoc's
    shared option lists, `diff-options.txt` in git's docs), each mapped to the first page
    that holds their text: they are that page's text, not documents of their own."""
    out: dict[str, str] = {}
    queue = sorted(rendered.items())
    while queue:
        src, page = queue.pop(0)
        try:
            with open(corpus_dir / src, "rb") as fh:
                text = fh.read(max_bytes).decode("utf-8", errors="replace")
        except OSError:
            continue
        base = posixpath.dirname(src)
        for m in _INCLUDE.finditer(text):
            target = posixpath.normpath(posixpath.join(base, m.group(1) or m.group(2)))
            if target in rels and target not in rendered and target not in out:
                if PurePosixPath(target).suffix.lower() in PAGE_SOURCE_EXTS:
                    out[target] = page
                    queue.append((target, page))
    return out


def _corpus_files(
    corpus_dir: Path, unsupported: list[Path] | None = None
) -> tuple[list[Path], list[SkippedFile]]:
    return files.iter_corpus_files(corpus_dir, exts=SUPPORTED_EXTS, unsupported=unsupported)


def unsupported_files(corpus_dir: Path) -> list[str]:
    """Non-hidden files under corpus_dir that no loader reads (corpus-relative POSIX paths),
    except those `.corpusignore` or its defaults skip (a site's `_images/`)."""
    found: list[Path] = []
    _corpus_files(Path(corpus_dir), found)
    rules = IgnoreRules.from_corpus(Path(corpus_dir))
    names = (files.source_name(p, Path(corpus_dir)) for p in found)
    return sorted(n for n in names if rules.match(n) is None)


@dataclass(frozen=True)
class _Outcome:
    """One file's load, as it travels back from a worker process."""

    doc: SourceDoc | None = None
    path: str = ""
    reason: str = ""
    not_content: bool = False
    used: frozenset[str] = frozenset()  # parse cache keys read or written


def _load_job(job: tuple[Path, Path, int, Path | None]) -> _Outcome:
    path, root, max_bytes, cache_dir = job
    cache = ParseCache(cache_dir) if cache_dir is not None else None
    try:
        outcome = _Outcome(doc=load_file(path, root=root, max_bytes=max_bytes, cache=cache))
    except NotContent as err:
        outcome = _Outcome(path=err.path, reason=err.reason, not_content=True)
    except DocumentError as err:
        outcome = _Outcome(path=err.path, reason=err.reason)
    return replace(outcome, used=cache.used) if cache is not None else outcome


def _load_all(jobs: list[tuple[Path, Path, int, Path | None]]) -> Iterator[_Outcome]:
    """Each file's outcome, in order; many files are parsed by worker processes at once
    (parsing HTML is pure Python: one core per process), the rest in this process."""
    workers = min(os.cpu_count() or 1, MAX_LOAD_WORKERS)
    # Workers are forked (no re-import of the caller's main module, no start-up cost), so
    # only from a process that runs no other Python thread (python -m index): forking a
    # threaded one (the bot's /reindex) could copy a lock another thread holds.
    if workers < 2 or len(jobs) < PARALLEL_MIN_FILES or threading.active_count() > 1:
        yield from map(_load_job, jobs)
        return
    try:
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("fork")
        )
    except (OSError, ValueError) as err:  # no processes to be had: parse here
        log.warning("loading in one process (%s)", err)
        yield from map(_load_job, jobs)
        return
    with pool:
        yield from pool.map(_load_job, jobs, chunksize=2)


def load_corpus(
    corpus_dir: Path,
    *,
    max_bytes: int,
    url_for: Callable[[str], str | None] | None = None,
    cache_dir: Path | None = None,
) -> tuple[list[SourceDoc], list[SkippedFile]]:
    """Every supported, non-hidden file under corpus_dir, in path order; failures are skipped.

    `url_for(source)` (e.g. a crawl's page URLs) sets metadata["url"], winning over the file's.
    `cache_dir`: parsed documents kept by their bytes (`index.parsed`), so unchanged files
    are not parsed again; pruned to this run's files afterwards.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise ConfigError(f"CORPUS_DIR is not a directory: {corpus_dir}")
    docs: list[SourceDoc] = []
    paths, skipped = _corpus_files(corpus_dir)  # not regular / outside the corpus: skipped
    rules = IgnoreRules.from_corpus(corpus_dir)
    cache = ParseCache(cache_dir) if cache_dir is not None else None
    todo: list[Path] = []
    rels = [files.source_name(path, corpus_dir) for path in paths]
    patterns = [rules.match(rel) for rel in rels]
    rendered = page_sources(
        [r for r, pattern in zip(rels, patterns, strict=True) if pattern is None]
    )
    included = included_sources(corpus_dir, rendered, set(rels), max_bytes=max_bytes)
    for path, rel, pattern in zip(paths, rels, patterns, strict=True):
        if pattern is not None:
            skipped.append(SkippedFile(rel, f"ignored ({pattern})", kind="ignored"))
        elif rel in rendered and not rules.reincluded(rel):
            reason = f"the source of {rendered[rel]}, which is indexed"
            skipped.append(SkippedFile(rel, reason, kind="ignored"))
        elif rel in included and not rules.reincluded(rel):
            reason = f"included in {included[rel]}, which is indexed"
            skipped.append(SkippedFile(rel, reason, kind="ignored"))
        else:
            todo.append(path)
    jobs = [(path, corpus_dir, max_bytes, cache_dir) for path in todo]
    for outcome in _load_all(jobs):
        if cache is not None:
            cache.mark_used(outcome.used)
        if outcome.doc is not None:
            doc = outcome.doc
            url = url_for(doc.source) if url_for else None
            if url:
                doc = replace(doc, metadata={**doc.metadata, "url": url})
            docs.append(doc)
        elif outcome.not_content:
            log.info("not indexing %s: %s", outcome.path, outcome.reason)
            skipped.append(SkippedFile(path=outcome.path, reason=outcome.reason, kind="ignored"))
        else:
            log.warning("skipping %s: %s", outcome.path, outcome.reason)
            skipped.append(SkippedFile(path=outcome.path, reason=outcome.reason))
    if cache is not None:
        cache.prune()
    return docs, sorted(skipped, key=lambda s: s.path)
