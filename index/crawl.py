"""Docs site -> local mirror: `python -m index --url URL` (or DOCS_URL) crawls a site into
`INDEX_DIR/crawl/<host>/` and the normal pipeline then indexes that folder.

Discovery: the sitemap (robots.txt `Sitemap:` lines, else `<start>sitemap.xml`; sitemap
index files are followed) when it lists pages under the start URL, else the links of the
fetched HTML pages. Only URLs under the start URL's scheme + host + path prefix are
fetched; query strings and fragments are not part of a page's identity.

Politeness: robots.txt is obeyed for the user agent "corpusbot", one request at a time with
CRAWL_DELAY_S between them (or the robots Crawl-delay when larger), at most CRAWL_MAX_PAGES
pages, CRAWL_TIMEOUT_S per request, MAX_DOCUMENT_BYTES per page. Traffic goes only to the
start URL's host (also for sitemaps named in robots.txt).

The mirror: one file per page (`index.html` for directory URLs, an extension from the
content type when the URL has none, file names made safe) and a hidden manifest
`.crawl-manifest.json` (ignored by the loader) with each page's url, path, etag,
last-modified, sha256 and fetched_at. A re-crawl sends If-None-Match / If-Modified-Since;
a 304 keeps the stored file byte for byte, so the pipeline finds it unchanged and embeds
nothing. Pages no longer found on the site (404/410, or no longer linked / in the sitemap)
are removed from the mirror; a page that fails transiently (timeout, 5xx) keeps its
previous copy and is reported as skipped.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import posixpath
import re
import sys
import tempfile
import time
import urllib.robotparser
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
from bs4 import BeautifulSoup, Tag

from index.errors import CorpusBotError
from index.settings import Settings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from langchain_core.embeddings import Embeddings

    from index.pipeline import IndexSummary

log = logging.getLogger(__name__)

ROBOTS_AGENT = "corpusbot"
USER_AGENT = "corpusbot/0.1 (docs indexer for a Discord Q&A bot; obeys robots.txt)"
MANIFEST = ".crawl-manifest.json"
NOINDEX_DIR = ".noindex"  # pages marked noindex: kept for re-crawls, never indexed
MAX_REDIRECTS = 5
MAX_SITEMAPS = 50
MAX_ROBOTS_BYTES = 500_000
MAX_CRAWL_DELAY_S = 60.0  # a hostile Crawl-delay must not stall the re-index for days
MAX_SEGMENT_BYTES = 150

# Content type -> (extension to save with, extensions that already say so).
_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "text/html": (".html", (".html", ".htm")),
    "application/xhtml+xml": (".html", (".html", ".htm")),
    "text/markdown": (".md", (".md", ".markdown")),
    "text/x-markdown": (".md", (".md", ".markdown")),
    "text/plain": (".txt", (".txt", ".md", ".markdown")),
    "application/pdf": (".pdf", (".pdf",)),
}
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_EXT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".pdf": "application/pdf",
}
# Link targets worth fetching; other alphabetic extensions (.css .js .png .zip ...) are assets.
_PAGE_EXTS = frozenset(
    ".html .htm .xhtml .shtml .php .asp .aspx .jsp .md .markdown .txt .pdf".split()
)
_UNSAFE_CHARS = re.compile(r"[^\w.\-~]")
_ENCODED_UNRESERVED = re.compile(r"%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])")
_INDEX_FILE = re.compile(r"/index\.html?$", re.I)


class CrawlError(CorpusBotError):
    """The site cannot be crawled at all (unreachable, robots says no, start not HTML)."""


@dataclass
class CrawlSummary:
    url: str = ""
    mirror: str = ""
    discovery: str = ""  # "sitemap" or "links"
    requests: int = 0  # every HTTP request, robots.txt and sitemaps included
    conditional: int = 0  # page requests sent with If-None-Match / If-Modified-Since
    fetched: int = 0  # pages downloaded (200), noindex pages included
    not_modified: int = 0  # pages answered 304: the stored copy is kept
    new: int = 0  # pages not in the mirror before
    changed: int = 0  # downloaded pages whose bytes differ from the stored copy
    removed: int = 0  # pages dropped from the mirror (gone from the site)
    disallowed: int = 0  # URLs robots.txt does not let us fetch
    pages: int = 0  # pages in the mirror now, to be indexed
    capped: bool = False  # CRAWL_MAX_PAGES was reached
    skipped: int = 0
    skipped_pages: list[dict[str, str]] = field(default_factory=list)  # url, reason
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def skip(self, url: str, reason: str) -> None:
        log.warning("skipping %s: %s", url, reason)
        self.skipped += 1
        self.skipped_pages.append({"url": url, "reason": reason})

    def line(self) -> str:
        text = (
            f"crawled {self.url} ({self.discovery}): {self.pages} pages in the mirror "
            f"(fetched {self.fetched}, not modified {self.not_modified}, new {self.new}, "
            f"changed {self.changed}, removed {self.removed}; {self.requests} requests) "
            f"in {self.seconds:.1f} s"
        )
        if self.disallowed:
            text += f"; {self.disallowed} disallowed by robots.txt"
        if self.capped:
            text += "; stopped at CRAWL_MAX_PAGES"
        if self.skipped_pages:
            pages = ", ".join(f"{s['url']} ({s['reason']})" for s in self.skipped_pages[:20])
            more = f" and {self.skipped - 20} more" if self.skipped > 20 else ""
            text += (
                f"; skipped {self.skipped} page{'s' if self.skipped != 1 else ''}: {pages}{more}"
            )
        return text


@dataclass
class CrawlResult:
    summary: CrawlSummary
    mirror_dir: Path
    # Mirror-relative POSIX path -> page URL. A path never changes its URL while the manifest
    # lists it (see _old_owners), so the pipeline's unchanged-detection, which looks at file
    # bytes only, can never keep a stale URL in the index.
    urls: dict[str, str]

    def url_for(self, source: str) -> str | None:
        """The loader hook: the crawled URL of a mirror file (it wins over canonical links)."""
        return self.urls.get(source)


# --- URLs ---------------------------------------------------------------------------------


def normalize_url(url: str) -> str | None:
    """A page's identity, scheme://host[:port]/path: lower-case scheme and host, no default
    port, no query, no fragment, and `dir/index.html` written `dir/` (static docs sites
    serve both, and link both)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    # Percent-encoded unreserved characters are those characters (RFC 3986 6.2.2.2), so
    # "%2e%2e" is ".." and is resolved below like any dot segment.
    path = _ENCODED_UNRESERVED.sub(lambda m: chr(int(m.group(1), 16)), path)
    if "/." in path:  # resolve "." and ".." segments
        path = urlsplit(urljoin("http://h/", path)).path
    path = _INDEX_FILE.sub("/", path)  # /docs/index.html is /docs/
    return urlunsplit((scheme, host, path, "", ""))


def url_prefix(url: str) -> str:
    """What the crawl stays under: the start URL's folder (`/docs` counts as `/docs/`)."""
    parts = urlsplit(url)
    path = parts.path
    if not path.endswith("/"):
        last = path.rsplit("/", 1)[-1]
        path = path.rsplit("/", 1)[0] + "/" if "." in last else path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _ext(path: str) -> str:
    return posixpath.splitext(path.rsplit("/", 1)[-1])[1].lower()


def looks_like_page(url: str) -> bool:
    """True unless the URL names an asset (stylesheet, script, image, archive, ...)."""
    ext = _ext(urlsplit(url).path)
    return not ext or ext in _PAGE_EXTS or not ext[1:].isalpha()


def _safe_segment(segment: str) -> str:
    name = _UNSAFE_CHARS.sub("_", unquote(segment))
    if name.startswith("."):
        name = "_" + name[1:]  # no hidden files, no "." or ".."
    if len(name.encode()) > MAX_SEGMENT_BYTES:  # file systems count bytes (255 at most)
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        stem, ext = posixpath.splitext(name)
        ext = ext if len(ext) <= 10 else ""
        room = MAX_SEGMENT_BYTES - len(ext.encode()) - 11
        stem = stem.encode()[:room].decode("utf-8", "ignore")
        name = f"{stem}-{digest}{ext}"
    return name or "_"


def mirror_path(url: str, content_type: str) -> str:
    """The mirror-relative POSIX path for a page: never absolute, never with '..'."""
    save_ext, known = _TYPES[content_type]
    raw = [s for s in urlsplit(url).path.split("/")]
    directory = url.endswith("/")
    segments = [_safe_segment(s) for s in raw if s]
    if directory or not segments:
        segments.append("index" + save_ext)
    elif _ext(segments[-1]) not in known:
        segments[-1] += save_ext
    return "/".join(segments)


def host_dir_name(url: str) -> str:
    return _safe_segment(urlsplit(url).netloc.replace(":", "_"))


# --- robots.txt and sitemaps ------------------------------------------------------------


def _parse_robots(text: str) -> urllib.robotparser.RobotFileParser:
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(text.splitlines())
    return robots


def _xml_locs(body: bytes) -> tuple[str, list[str]]:
    """('urlset' | 'sitemapindex' | other root tag, its <loc> values)."""
    if body[:2] == b"\x1f\x8b":  # a .xml.gz sitemap served as-is
        body = _gunzip(body, limit=50_000_000)
    root = ElementTree.fromstring(body)  # expat: no external entities, entity-bomb limits
    kind = root.tag.rsplit("}", 1)[-1]
    locs = [
        el.text.strip()
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "loc" and el.text and el.text.strip()
    ]
    return kind, locs


def _gunzip(data: bytes, *, limit: int) -> bytes:
    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, limit + 1)
    if len(out) > limit:
        raise ValueError("sitemap too large when decompressed")
    return out


# --- the crawler --------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    url: str  # after redirects
    headers: httpx.Headers
    body: bytes = b""
    error: str | None = None  # transport failure or size limit; status is 0
    seen: bool = False  # a redirect to a page this crawl already has (not followed)


class Crawler:
    def __init__(
        self,
        settings: Settings,
        start_url: str,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        progress: bool = False,
    ) -> None:
        start = normalize_url(start_url)
        if start is None:
            raise CrawlError(f"not an http(s) URL: {start_url!r}")
        self.settings = settings
        self.start = start
        self.prefix = url_prefix(start)
        self.host = urlsplit(start).netloc
        self.client = client or httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(settings.crawl_timeout_s),
            follow_redirects=False,
            trust_env=False,  # no proxies from the environment: talk to the site only
        )
        self.sleep = sleep
        self.progress = progress and sys.stderr.isatty()
        self.delay = settings.crawl_delay_s
        self.robots = _parse_robots("")
        self.summary = CrawlSummary(url=start)
        self._last_request = 0.0
        self._owners: dict[str, str] | None = None
        self.mirror_dir = settings.index_dir / "crawl" / host_dir_name(start)

    # -- HTTP ----------------------------------------------------------------------------

    def _wait(self) -> None:
        if self._last_request:
            pause = self._last_request + self.delay - time.monotonic()
            if pause > 0:
                self.sleep(pause)
        self._last_request = time.monotonic()

    def _get(self, url: str, headers: dict[str, str] | None = None, *, limit: int) -> _Response:
        """One GET (no redirects), body read up to `limit` bytes; transport errors -> error."""
        self._wait()
        self.summary.requests += 1
        deadline = time.monotonic() + 2 * self.settings.crawl_timeout_s
        try:
            with self.client.stream("GET", url, headers=headers or {}) as resp:
                out = _Response(resp.status_code, url, resp.headers)
                if resp.status_code != 200:
                    return out
                length = resp.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    out.error = f"too large ({length} bytes, limit {limit})"
                    return out
                buf = bytearray()
                for piece in resp.iter_bytes():
                    buf += piece
                    if len(buf) > limit:
                        out.error = f"too large (over {limit} bytes)"
                        return out
                    if time.monotonic() > deadline:  # a server that drips bytes forever
                        out.error = "timed out"
                        return out
                out.body = bytes(buf)
                return out
        except httpx.TimeoutException:
            return _Response(0, url, httpx.Headers(), error="timed out")
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError) as exc:
            return _Response(0, url, httpx.Headers(), error=_one_line(exc))

    def fetch(
        self,
        url: str,
        *,
        allow: Callable[[str], bool],
        conditional: Callable[[str], dict[str, str]] | None = None,
        limit: int,
        seen: Callable[[str], bool] | None = None,
    ) -> _Response:
        """GET following up to MAX_REDIRECTS redirects whose targets pass `allow` (and that
        `seen` does not already know)."""
        for _ in range(MAX_REDIRECTS + 1):
            headers = conditional(url) if conditional else {}
            if headers:
                self.summary.conditional += 1
            resp = self._get(url, headers, limit=limit)
            if resp.status not in (301, 302, 303, 307, 308):
                return resp
            target = normalize_url(urljoin(url, resp.headers.get("location", "")))
            if target is None or not allow(target):
                return _Response(0, url, resp.headers, error=f"redirects off the site to {target}")
            if not self.robots.can_fetch(ROBOTS_AGENT, target):
                return _Response(
                    0, url, resp.headers, error="redirects to a URL robots.txt disallows"
                )
            if seen is not None and seen(target):
                return _Response(resp.status, target, resp.headers, seen=True)
            url = target
        return _Response(0, url, httpx.Headers(), error="too many redirects")

    def in_prefix(self, url: str) -> bool:
        return url.startswith(self.prefix) or url + "/" == self.prefix

    def same_host(self, url: str) -> bool:
        return urlsplit(url).netloc == self.host

    # -- robots.txt ------------------------------------------------------------------------

    def read_robots(self) -> None:
        origin = urlunsplit((urlsplit(self.start).scheme, self.host, "", "", ""))
        resp = self.fetch(f"{origin}/robots.txt", allow=self.same_host, limit=MAX_ROBOTS_BYTES)
        if resp.error and not resp.error.startswith("too large"):
            raise CrawlError(f"cannot reach {self.host}: {resp.error}")
        if resp.status == 200:
            self.robots = _parse_robots(resp.body.decode("utf-8", "replace"))
        elif resp.status in (401, 403) or resp.status >= 500:
            # RFC 9309: unauthorized or unavailable robots.txt means "crawl nothing".
            raise CrawlError(
                f"{self.host}/robots.txt answered HTTP {resp.status}: not crawling the site"
            )
        # any other answer (404 ...): no rules
        robots_delay = self.robots.crawl_delay(ROBOTS_AGENT)
        if robots_delay is not None:
            wanted = float(robots_delay)
            if wanted > MAX_CRAWL_DELAY_S:
                log.warning(
                    "robots.txt asks for a %s s crawl delay; using %s s", wanted, MAX_CRAWL_DELAY_S
                )
            self.delay = max(self.delay, min(wanted, MAX_CRAWL_DELAY_S))
        if not self.robots.can_fetch(ROBOTS_AGENT, self.start):
            raise CrawlError(f"robots.txt of {self.host} disallows crawling {self.start}")

    # -- sitemaps --------------------------------------------------------------------------

    def sitemap_urls(self) -> list[str]:
        """Page URLs under the prefix listed by the site's sitemap(s); [] when there is none."""
        todo = deque(self.robots.site_maps() or [self.prefix + "sitemap.xml"])
        seen: set[str] = set()
        pages: list[str] = []
        while todo and len(seen) < MAX_SITEMAPS:
            sitemap = normalize_url(todo.popleft())
            if sitemap is None or sitemap in seen:
                continue
            seen.add(sitemap)
            if not self.same_host(sitemap):  # traffic goes to the docs site only
                log.info("ignoring sitemap on another host: %s", sitemap)
                continue
            if not self.robots.can_fetch(ROBOTS_AGENT, sitemap):
                continue
            resp = self.fetch(sitemap, allow=self.same_host, limit=50_000_000)
            if resp.status != 200:
                log.debug("no sitemap at %s (%s)", sitemap, resp.error or f"HTTP {resp.status}")
                continue
            try:
                kind, locs = _xml_locs(resp.body)
            except (ElementTree.ParseError, ValueError, OSError, zlib.error) as exc:
                log.warning("unreadable sitemap %s: %s", sitemap, _one_line(exc))
                continue
            if kind == "sitemapindex":
                todo.extend(urljoin(sitemap, loc) for loc in locs)
            elif kind == "urlset":
                pages.extend(urljoin(sitemap, loc) for loc in locs)
        out: list[str] = []
        for page in pages:
            url = normalize_url(page)
            if url and self.in_prefix(url) and looks_like_page(url) and url not in out:
                out.append(url)
        return out

    # -- the crawl -------------------------------------------------------------------------

    def run(self) -> CrawlResult:
        started = time.perf_counter()
        self.summary.mirror = str(self.mirror_dir)
        self.mirror_dir.mkdir(parents=True, exist_ok=True)
        old = _read_manifest(self.mirror_dir)
        new: dict[str, dict[str, Any]] = {}
        claimed: dict[str, str] = {}  # mirror path -> url

        def conditional(url: str) -> dict[str, str]:
            entry = old.get(url)
            if not entry or not (self.mirror_dir / entry["path"]).is_file():
                return {}
            headers = {}
            if entry.get("etag"):
                headers["If-None-Match"] = entry["etag"]
            if entry.get("last_modified"):
                headers["If-Modified-Since"] = entry["last_modified"]
            return headers

        self.read_robots()

        # The start page first: it must answer, and be HTML. Its redirects may go anywhere on
        # the host (http -> https, / -> /en/latest/); where it lands sets the prefix.
        first = self.fetch(
            self.start, allow=self.same_host, conditional=conditional, limit=self._limit
        )
        if first.status == 0 and first.error and not first.error.startswith("too large"):
            raise CrawlError(f"cannot fetch {self.start}: {first.error}")
        if first.status not in (200, 304) or first.error:
            raise CrawlError(f"cannot fetch {self.start}: {first.error or f'HTTP {first.status}'}")
        if first.url != self.start:
            self.start, self.prefix = first.url, url_prefix(first.url)
            self.summary.url = first.url
        ctype = _content_type(first.headers) if first.status == 200 else None
        if first.status == 200 and ctype not in _HTML_TYPES:
            raise CrawlError(
                f"the start URL {self.start} is not an HTML page (Content-Type: "
                f"{first.headers.get('content-type', 'none')})"
            )

        sitemap = self.sitemap_urls()
        self.summary.discovery = "sitemap" if sitemap else "links"
        queue: deque[str] = deque([self.start, *sitemap])
        queued = set(queue)
        cap = self.settings.crawl_max_pages
        responses: dict[str, _Response] = {self.start: first}
        attempts = 0

        while queue:
            url = queue.popleft()
            if url in new:
                continue  # reached before through a redirect
            if attempts >= cap:
                self.summary.capped = True
                log.warning(
                    "CRAWL_MAX_PAGES (%d) reached; %d URLs not fetched", cap, len(queue) + 1
                )
                break
            if not self.robots.can_fetch(ROBOTS_AGENT, url):
                self.summary.disallowed += 1
                log.debug("robots.txt disallows %s", url)
                continue
            attempts += 1
            resp = responses.pop(url, None) or self.fetch(
                url,
                allow=self.in_prefix,
                conditional=conditional,
                limit=self._limit,
                seen=new.__contains__,
            )
            if resp.seen:
                continue  # redirects to a page we already have
            final = resp.url
            queued.add(final)
            html = self._store(url, final, resp, old, new, claimed)
            if self.progress:
                print(f"\rcrawled {len(new)} pages", end="", file=sys.stderr, flush=True)
            if html is None or self.summary.discovery != "links":
                continue
            for link in _links(html, final):
                if link not in queued and self.in_prefix(link) and looks_like_page(link):
                    queued.add(link)
                    queue.append(link)
        if self.progress:
            print(file=sys.stderr)

        removed = {url for url in old if url not in new}
        self.summary.removed = len(removed)
        for url in sorted(removed):
            log.debug("removing %s from the mirror (no longer on the site)", url)
        _write_manifest(self.mirror_dir, self.start, new)
        _remove_strays(self.mirror_dir, {entry["path"] for entry in new.values()})
        self.summary.pages = sum(not entry.get("noindex") for entry in new.values())
        self.summary.seconds = round(time.perf_counter() - started, 3)
        return CrawlResult(
            summary=self.summary,
            mirror_dir=self.mirror_dir,
            urls={entry["path"]: url for url, entry in new.items() if not entry.get("noindex")},
        )

    def _old_owners(self, old: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Mirror path -> the URL that owned it before this crawl (files still to be kept)."""
        if self._owners is None:
            self._owners = {entry["path"]: url for url, entry in old.items()}
        return self._owners

    @property
    def _limit(self) -> int:
        return self.settings.max_document_bytes

    def _store(
        self,
        url: str,
        final: str,
        resp: _Response,
        old: dict[str, dict[str, Any]],
        new: dict[str, dict[str, Any]],
        claimed: dict[str, str],
    ) -> bytes | None:
        """Record one answer in the mirror; the HTML bytes to take links from, or None."""
        previous = old.get(final)
        old_owners = self._old_owners(old)
        if resp.status == 304 and previous is not None:
            stored = self.mirror_dir / previous["path"]
            entry = dict(previous)
            for key, header in (("etag", "etag"), ("last_modified", "last-modified")):
                if resp.headers.get(header):
                    entry[key] = resp.headers[header]
            new[final] = entry
            claimed[entry["path"]] = final
            self.summary.not_modified += 1
            if entry.get("content_type") in _HTML_TYPES:
                try:
                    return stored.read_bytes()
                except OSError:
                    return None
            return None
        if resp.error or resp.status != 200:
            reason = resp.error or f"HTTP {resp.status}"
            self.summary.skip(url, reason)
            transient = resp.status == 0 and not reason.startswith(("too large", "redirects"))
            if previous is not None and (transient or resp.status == 429 or resp.status >= 500):
                new[final] = previous  # keep the last good copy; it is not gone
                claimed[previous["path"]] = final
            return None
        ctype = _content_type(resp.headers)
        if ctype in ("", "application/octet-stream"):  # a server that does not say: the name
            ctype = _EXT_TYPES.get(_ext(urlsplit(final).path), ctype)
        if ctype not in _TYPES:
            self.summary.skip(url, f"not a document (Content-Type: {ctype or 'none'})")
            return None
        resp.body = _to_utf8(resp.body, resp.headers) if ctype != "application/pdf" else resp.body
        noindex = _noindex(resp.headers, resp.body if ctype in _HTML_TYPES else b"")
        path = mirror_path(final, ctype)
        if noindex:
            # Kept for its links and validators only: the loader skips hidden folders.
            log.debug("not indexing %s: noindex", final)
            path = f"{NOINDEX_DIR}/{path}"
        owner = claimed.get(path) or old_owners.get(path)
        if owner not in (None, final):  # two URLs map to one file name
            stem, ext = posixpath.splitext(path)
            path = f"{stem}-{hashlib.sha256(final.encode()).hexdigest()[:8]}{ext}"
        target = self.mirror_dir / path
        if not target.resolve().is_relative_to(self.mirror_dir.resolve()):
            self.summary.skip(url, "unsafe file name")
            return None
        sha = hashlib.sha256(resp.body).hexdigest()
        try:
            _atomic_write(target, resp.body)
        except OSError as exc:
            self.summary.skip(url, f"cannot save: {exc.strerror or exc}")
            return None
        self.summary.fetched += 1
        if previous is None:
            self.summary.new += 1
        elif previous.get("sha256") != sha:
            self.summary.changed += 1
        new[final] = {
            "url": final,
            "path": path,
            "etag": resp.headers.get("etag"),
            "last_modified": resp.headers.get("last-modified"),
            "sha256": sha,
            "content_type": ctype,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if noindex:
            new[final]["noindex"] = True
        claimed[path] = final
        return resp.body if ctype in _HTML_TYPES else None


# --- helpers ------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _content_type(headers: httpx.Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _to_utf8(body: bytes, headers: httpx.Headers) -> bytes:
    """Text in a charset named only by the Content-Type header, re-encoded as UTF-8 (the
    loader reads UTF-8, or a charset the page itself declares)."""
    match = re.search(r"charset=[\"']?([\w.:-]+)", headers.get("content-type", ""), re.I)
    charset = match.group(1).lower() if match else ""
    if not charset or charset.replace("-", "").replace("_", "") in ("utf8", "usascii", "ascii"):
        return body
    try:
        body.decode("utf-8")
        return body  # already UTF-8 whatever the header says
    except UnicodeDecodeError:
        pass
    try:
        return body.decode(charset).encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return body


def _noindex(headers: httpx.Headers, html: bytes) -> bool:
    if "noindex" in headers.get("x-robots-tag", "").lower():
        return True
    if not html or b"noindex" not in html.lower():
        return False
    soup = BeautifulSoup(html, "html.parser")
    for name in ("robots", ROBOTS_AGENT):
        tag = soup.find("meta", attrs={"name": re.compile(f"^{name}$", re.I)})
        content = tag.get("content") if isinstance(tag, Tag) else None
        if isinstance(content, str) and "noindex" in content.lower():
            return True
    return False


def _links(html: bytes, page_url: str) -> Iterator[str]:
    """Normalized absolute URLs of the page's <a href> links (rel=nofollow excluded)."""
    try:
        soup = BeautifulSoup(html, "html.parser")
    except Exception:  # noqa: BLE001 - a page we cannot parse has no links for us
        return
    base = page_url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag) and isinstance(base_tag.get("href"), str):
        base = urljoin(page_url, str(base_tag["href"]))
    for a in soup.find_all("a", href=True):
        rel = a.get("rel") or []
        if "nofollow" in [r.lower() for r in (rel if isinstance(rel, list) else rel.split())]:
            continue
        try:
            url = normalize_url(urljoin(base, str(a["href"])))
        except ValueError:
            continue
        if url:
            yield url


def _read_manifest(mirror_dir: Path) -> dict[str, dict[str, Any]]:
    path = mirror_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pages = data["pages"]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring an unreadable crawl manifest %s: %s", path, _one_line(exc))
        return {}
    out: dict[str, dict[str, Any]] = {}
    for entry in pages if isinstance(pages, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            path_ = entry.get("path")
            if (
                isinstance(path_, str)
                and ".." not in path_.split("/")
                and not path_.startswith("/")
            ):
                out[entry["url"]] = entry
    return out


def _write_manifest(mirror_dir: Path, start: str, pages: dict[str, dict[str, Any]]) -> None:
    data = {
        "start_url": start,
        "crawled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pages": [pages[url] for url in sorted(pages)],
    }
    _atomic_write(mirror_dir / MANIFEST, json.dumps(data, indent=1).encode())


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_strays(mirror_dir: Path, keep: set[str]) -> None:
    """Delete every mirror file the manifest does not list (removed pages, crash leftovers)."""
    for dirpath, dirnames, filenames in os.walk(mirror_dir, topdown=False):
        for name in filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(mirror_dir).as_posix()
            if rel != MANIFEST and rel not in keep:
                path.unlink(missing_ok=True)
        for name in dirnames:
            try:
                Path(dirpath, name).rmdir()  # only when empty
            except OSError:
                pass


@contextmanager
def _crawl_lock(index_dir: Path, name: str) -> Iterator[None]:
    """One crawl of a host at a time per INDEX_DIR (a second one waits)."""
    lock_dir = index_dir / "crawl"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another crawl of %s is running; waiting for it to finish", name)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def crawl_site(
    settings: Settings,
    url: str,
    *,
    progress: bool = False,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CrawlResult:
    """Mirror the docs site at `url` into INDEX_DIR/crawl/<host>/; raise CrawlError if the
    site cannot be crawled at all."""
    with _crawler(settings, url, client=client, progress=progress, sleep=sleep) as crawler:
        return crawler.run()


def crawl_and_index(
    settings: Settings,
    url: str,
    *,
    full: bool = False,
    progress: bool = False,
    client: ClientAPI | None = None,
    embeddings: Embeddings | None = None,
) -> tuple[CrawlResult, IndexSummary]:
    """Crawl, then re-index the mirror (same generations and switch as a corpus folder),
    with each page's URL as its documents' `url`. The crawl lock is held throughout, so a
    second crawl of the same site cannot change the mirror while it is being indexed."""
    from index.pipeline import reindex

    with _crawler(settings, url, progress=progress) as crawler:
        result = crawler.run()
        summary = reindex(
            settings.model_copy(update={"corpus_dir": result.mirror_dir}),
            full=full,
            progress=progress,
            client=client,
            embeddings=embeddings,
            url_for=result.url_for,
        )
    return result, summary


def refresh_index(
    settings: Settings,
    *,
    full: bool = False,
    progress: bool = False,
    client: ClientAPI | None = None,
    embeddings: Embeddings | None = None,
) -> IndexSummary:
    """Bring the index up to date from its configured source: the DOCS_URL site when set
    (crawl, then re-index the mirror), else CORPUS_DIR. For callers like the bot's /reindex."""
    from index.pipeline import reindex

    kwargs = {"full": full, "progress": progress, "client": client, "embeddings": embeddings}
    if not settings.docs_url:
        return reindex(settings, **kwargs)
    crawl, summary = crawl_and_index(settings, settings.docs_url, **kwargs)
    log.info("%s", crawl.summary.line())
    return summary


@contextmanager
def _crawler(
    settings: Settings,
    url: str,
    *,
    client: httpx.Client | None = None,
    progress: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Crawler]:
    crawler = Crawler(settings, url, client=client, progress=progress, sleep=sleep)
    try:
        with _crawl_lock(settings.index_dir, host_dir_name(crawler.start)):
            yield crawler
    finally:
        if client is None:
            crawler.client.close()
