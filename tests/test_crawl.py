"""`python -m index --url`: crawl a real docs build served over real HTTP on 127.0.0.1.

The site is a small Sphinx build (tests/data/docs_site, made from tests/data/docs_site_src
with sphinx-build 9.0.4, alabaster theme), served under /docs/ by a ThreadingHTTPServer that
sends ETag and Last-Modified, answers conditional requests with 304 and records every
request. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from index import store
from index.__main__ import main
from index.crawl import (
    MANIFEST,
    USER_AGENT,
    CrawlError,
    crawl_site,
    mirror_path,
    normalize_url,
    url_prefix,
)
from index.pipeline import reindex
from index.settings import REPO_ROOT, Settings
from tests.helpers import active_view

SITE = REPO_ROOT / "tests" / "data" / "docs_site"
# What a crawl of /docs/ keeps: search.html is <meta name="robots" content="noindex">,
# genindex.html is only a <link rel="index">, /docs/index.html is /docs/.
PAGES = {
    "/docs/",
    "/docs/install.html",
    "/docs/faq.html",
    "/docs/guide/configuration.html",
    "/docs/guide/replication.html",
}
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript"}


@dataclass
class Hit:
    path: str
    status: int
    user_agent: str
    if_none_match: str | None
    if_modified_since: str | None

    @property
    def conditional(self) -> bool:
        return bool(self.if_none_match or self.if_modified_since)


class DocsServer:
    """A real HTTP server for a folder, with validators, 304s and a request log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.robots: str | None = None  # None: /robots.txt is 404
        self.sitemaps: dict[str, str] = {}  # path -> XML
        self.redirects: dict[str, str] = {}  # path -> Location
        self.errors: dict[str, int] = {}  # path -> status
        self.raw: dict[str, tuple[bytes, str]] = {}  # path -> (body, Content-Type or "")
        self.slow: dict[str, float] = {}  # path -> seconds to wait before answering
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None  # a client that gave up
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers) -> int:
        # Recorded before the response goes out: once the client has it, a test may look.
        with self.lock:
            self.hits.append(
                Hit(
                    path=h.path,
                    status=status,
                    user_agent=h.headers.get("User-Agent", ""),
                    if_none_match=h.headers.get("If-None-Match"),
                    if_modified_since=h.headers.get("If-Modified-Since"),
                )
            )
        h.send_response(status)
        for name, value in headers.items():
            h.send_header(name.replace("_", "-"), value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        return status

    def answer(self, h: BaseHTTPRequestHandler) -> int:
        path = urlsplit(h.path).path
        time.sleep(self.slow.get(path, 0))
        if path in self.errors:
            return self._send(h, self.errors[path], b"error")
        if path in self.redirects:
            return self._send(h, 301, Location=self.redirects[path])
        if path in self.raw:
            body, ctype = self.raw[path]
            return self._send(h, 200, body, **({"Content_Type": ctype} if ctype else {}))
        if path == "/robots.txt":
            if self.robots is None:
                return self._send(h, 404, b"not found")
            return self._send(h, 200, self.robots.encode(), Content_Type="text/plain")
        if path in self.sitemaps:
            return self._send(h, 200, self.sitemaps[path].encode(), Content_Type="application/xml")
        file = self.root / unquote(path).lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.resolve().is_relative_to(self.root.resolve()) or not file.is_file():
            return self._send(h, 404, b"not found", Content_Type="text/html")
        body = file.read_bytes()
        mtime = int(file.stat().st_mtime)
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        validators = {
            "ETag": etag,
            "Last_Modified": email.utils.formatdate(mtime, usegmt=True),
        }
        inm, ims = h.headers.get("If-None-Match"), h.headers.get("If-Modified-Since")
        if inm is not None:
            if etag in [t.strip() for t in inm.split(",")]:
                return self._send(h, 304, **validators)
        elif ims is not None:
            since = email.utils.parsedate_to_datetime(ims).timestamp()
            if mtime <= since:
                return self._send(h, 304, **validators)
        ctype = TYPES.get(file.suffix, "application/octet-stream")
        return self._send(h, 200, body, Content_Type=ctype, **validators)

    def pages_hit(self) -> list[Hit]:
        """Requests for anything but robots.txt and sitemaps."""
        skip = {"/robots.txt", "/docs/sitemap.xml", *self.sitemaps}
        return [h for h in self.hits if h.path not in skip]

    def sitemap_of(self, paths: list[str]) -> str:
        urls = "".join(f"<url><loc>{self.base}{p}</loc></url>" for p in paths)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DocsServer]:
    root = tmp_path / "www"
    shutil.copytree(SITE, root / "docs")
    # Things a crawl of /docs/ must leave alone: a page outside the prefix, linked from it.
    (root / "private").mkdir()
    (root / "private" / "secret.html").write_text("<html><body><p>secret</p></body></html>")
    index = root / "docs" / "index.html"
    index.write_text(
        index.read_text().replace(
            "</body>",
            '<a href="/private/secret.html">x</a><a href="/docs/?x=1#y">y</a>'
            '<a href="search.html">search</a></body>',
        )
    )
    server = DocsServer(root)
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        corpus_dir=tmp_path / "unused-corpus",
        index_dir=tmp_path / "index",
        crawl_delay_s=0,
        crawl_timeout_s=5,
    )


def paths(hits: list[Hit]) -> set[str]:
    return {h.path for h in hits}


def chunk_urls(settings: Settings) -> dict[str, set[str]]:
    """source -> the set of `url` metadata values of its chunks in the active generation."""
    out: dict[str, set[str]] = {}
    for _, _, md in store.iter_rows(active_view(settings), ["metadatas"]):
        out.setdefault(str(md["source"]), set()).add(str(md.get("url")))
    return out


# --- discovery ------------------------------------------------------------------------------


def test_link_discovery_without_sitemap(site: DocsServer, settings: Settings) -> None:
    result = crawl_site(settings, f"{site.base}/docs/")
    s = result.summary

    assert s.discovery == "links"
    assert set(result.urls.values()) == {site.base + p for p in PAGES}
    assert s.fetched == s.new == len(PAGES) + 1 and s.skipped == 0 and not s.capped  # + search
    # Only pages under /docs/: no assets, no rel=nofollow page sources, nothing outside.
    requested = paths(site.pages_hit())
    assert requested == PAGES | {"/docs/search.html"}, requested
    assert len(site.pages_hit()) == len(requested)  # each page fetched once (query ignored)
    assert {h.user_agent for h in site.hits} == {USER_AGENT}
    # The mirror: index.html for the directory URL, sub-folders kept, a manifest.
    mirror = result.mirror_dir
    assert mirror == settings.index_dir / "crawl" / f"127.0.0.1_{site.base.rsplit(':', 1)[1]}"
    assert (mirror / "docs" / "index.html").read_bytes() == (
        site.root / "docs/index.html"
    ).read_bytes()
    assert (mirror / "docs" / "guide" / "replication.html").is_file()
    files = {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()}
    assert files == set(result.urls) | {MANIFEST, ".noindex/docs/search.html"}
    manifest = json.loads((mirror / MANIFEST).read_text())
    entry = next(e for e in manifest["pages"] if e["url"].endswith("/docs/faq.html"))
    assert entry["path"] == "docs/faq.html" and entry["etag"] and entry["last_modified"]
    assert entry["sha256"] == hashlib.sha256((site.root / "docs/faq.html").read_bytes()).hexdigest()
    assert entry["fetched_at"]


@pytest.mark.parametrize("where", ["robots", "default"])
def test_sitemap_discovery(site: DocsServer, settings: Settings, where: str) -> None:
    listed = [
        "/docs/",
        "/docs/install.html",
        "/docs/guide/replication.html",
        "/private/secret.html",
    ]
    if where == "robots":  # robots.txt names a sitemap index, which names the sitemap
        site.robots = f"User-agent: *\nAllow: /\nSitemap: {site.base}/maps/index.xml\n"
        site.sitemaps["/maps/index.xml"] = (
            '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{site.base}/maps/pages.xml</loc></sitemap></sitemapindex>"
        )
        site.sitemaps["/maps/pages.xml"] = site.sitemap_of(listed)
    else:  # no robots.txt: <start>sitemap.xml
        site.sitemaps["/docs/sitemap.xml"] = site.sitemap_of(listed)

    result = crawl_site(settings, f"{site.base}/docs/")

    assert result.summary.discovery == "sitemap"
    wanted = {"/docs/", "/docs/install.html", "/docs/guide/replication.html"}
    assert {urlsplit(u).path for u in result.urls.values()} == wanted
    assert paths(site.pages_hit()) == wanted  # the sitemap's pages only: no link following
    assert set(site.sitemaps) <= paths(site.hits)


def test_gzipped_sitemap(site: DocsServer, settings: Settings) -> None:
    xml = site.sitemap_of(["/docs/faq.html", "/docs/_static/basic.css"])
    site.raw["/docs/sitemap.xml"] = (gzip.compress(xml.encode()), "application/x-gzip")
    result = crawl_site(settings, f"{site.base}/docs/")
    assert result.summary.discovery == "sitemap"
    assert paths(site.pages_hit()) == {"/docs/", "/docs/faq.html"}  # assets are not pages


# --- politeness -----------------------------------------------------------------------------


def test_robots_disallow_and_crawl_delay_are_respected(site: DocsServer, settings: Settings):
    site.robots = "User-agent: corpusbot\nDisallow: /docs/guide/\nCrawl-delay: 2\n"
    pauses: list[float] = []
    result = crawl_site(settings, f"{site.base}/docs/", sleep=pauses.append)

    assert not any(h.path.startswith("/docs/guide/") for h in site.hits)
    assert result.summary.disallowed == 2
    assert not any(u.startswith(f"{site.base}/docs/guide/") for u in result.urls.values())
    # Crawl-delay (2 s) beats CRAWL_DELAY_S=0: a pause before every request but the first.
    assert len(pauses) == result.summary.requests - 1 == len(site.hits) - 1
    assert all(0 < p <= 2 for p in pauses) and max(pauses) > 1.5, pauses


def test_crawl_delay_setting_spaces_requests(site: DocsServer, settings: Settings) -> None:
    started = time.monotonic()
    settings = settings.model_copy(update={"crawl_delay_s": 0.15, "crawl_max_pages": 2})
    result = crawl_site(settings, f"{site.base}/docs/")
    assert result.summary.requests == len(site.hits) == 4  # robots, start, sitemap, 1 page
    assert time.monotonic() - started >= 3 * 0.15


def test_robots_disallowing_everything_is_fatal(site: DocsServer, settings: Settings):
    site.robots = "User-agent: *\nDisallow: /\n"
    with pytest.raises(CrawlError, match="disallows"):
        crawl_site(settings, f"{site.base}/docs/")
    assert paths(site.hits) == {"/robots.txt"}


def test_page_cap(site: DocsServer, settings: Settings) -> None:
    result = crawl_site(settings.model_copy(update={"crawl_max_pages": 3}), f"{site.base}/docs/")
    assert result.summary.capped
    assert len(result.urls) == 3
    assert len(site.pages_hit()) == 3


def test_page_failures_are_skipped_not_fatal(site: DocsServer, settings: Settings) -> None:
    site.errors["/docs/faq.html"] = 500
    site.redirects["/docs/install.html"] = "http://127.0.0.1:9/elsewhere.html"  # off the site
    site.slow["/docs/guide/replication.html"] = 1.5
    settings = settings.model_copy(update={"crawl_timeout_s": 0.5})
    result = crawl_site(settings, f"{site.base}/docs/")
    reasons = {s["url"].rsplit("/", 1)[1]: s["reason"] for s in result.summary.skipped_pages}
    assert reasons == {
        "faq.html": "HTTP 500",
        "install.html": reasons["install.html"],
        "replication.html": "timed out",
    }
    assert "redirects off the site" in reasons["install.html"]
    assert len(result.urls) == len(PAGES) - 3
    assert not any(h.path == "/elsewhere.html" for h in site.hits)


def test_redirects_sizes_and_charsets(site: DocsServer, settings: Settings) -> None:
    site.redirects["/start"] = "/docs/"  # the start URL's redirect sets the prefix
    site.redirects["/docs/old-install.html"] = "/docs/install.html"  # within the prefix
    big = b"<html><body><p>" + b"x" * 20000 + b"</p></body></html>"
    site.raw["/docs/big.html"] = (big, "text/html")
    site.raw["/docs/latin.html"] = (
        "<html><body><p>Caf\u00e9 cr\u00e8me</p></body></html>".encode("latin-1"),
        "text/html; charset=ISO-8859-1",
    )
    site.raw["/docs/untyped.html"] = (b"<html><body><p>no type</p></body></html>", "")
    site.raw["/docs/data.zip.html"] = (b"PK\x03\x04", "application/zip")
    index = site.root / "docs" / "index.html"
    links = "".join(
        f'<a href="{p}">l</a>'
        for p in ("old-install.html", "big.html", "latin.html", "untyped.html", "data.zip.html")
    )
    index.write_text(index.read_text().replace("</body>", links + "</body>"))

    settings = settings.model_copy(update={"max_document_bytes": 12000})
    result = crawl_site(settings, f"{site.base}/start")

    s = result.summary
    assert s.url == f"{site.base}/docs/"
    reasons = {x["url"].rsplit("/", 1)[1]: x["reason"] for x in s.skipped_pages}
    assert set(reasons) == {"big.html", "data.zip.html"}
    assert reasons["big.html"].startswith("too large")
    assert reasons["data.zip.html"] == "not a document (Content-Type: application/zip)"
    assert sum(h.path == "/docs/install.html" for h in site.hits) == 1  # redirect deduplicated
    mirror = result.mirror_dir
    assert (mirror / "docs/latin.html").read_text(encoding="utf-8").count("Café crème") == 1
    assert (mirror / "docs/untyped.html").is_file()
    assert not (mirror / "docs/big.html").exists()


def test_two_urls_for_one_file_name_keep_their_own_content(site: DocsServer, settings):
    site.raw["/docs/page"] = (b"<html><body><p>extensionless page</p></body></html>", "text/html")
    site.raw["/docs/page.html"] = (b"<html><body><p>dot html page</p></body></html>", "text/html")
    index = site.root / "docs" / "index.html"
    original = index.read_text()
    for order in (("page", "page.html"), ("page.html", "page")):  # the second crawl swaps
        links = "".join(f'<a href="{p}">l</a>' for p in order)
        index.write_text(original.replace("</body>", links + "</body>"))
        result = crawl_site(settings, f"{site.base}/docs/")
        by_url = {u: (result.mirror_dir / p).read_bytes() for p, u in result.urls.items()}
        assert by_url[f"{site.base}/docs/page"] == site.raw["/docs/page"][0]
        assert by_url[f"{site.base}/docs/page.html"] == site.raw["/docs/page.html"][0]


def test_a_transient_failure_keeps_the_last_copy(site: DocsServer, settings: Settings) -> None:
    first = crawl_site(settings, f"{site.base}/docs/")
    site.errors["/docs/faq.html"] = 503
    second = crawl_site(settings, f"{site.base}/docs/")
    assert second.summary.skipped_pages == [
        {"url": f"{site.base}/docs/faq.html", "reason": "HTTP 503"}
    ]
    assert second.urls == first.urls and second.summary.removed == 0
    assert (second.mirror_dir / "docs" / "faq.html").is_file()


# --- re-crawl and the index -----------------------------------------------------------------


def test_recrawl_conditional_304_changed_and_removed_pages(
    site: DocsServer, settings: Settings, minilm
) -> None:
    url = f"{site.base}/docs/"

    def run():
        result = crawl_site(settings, url)
        summary = reindex(
            settings.model_copy(update={"corpus_dir": result.mirror_dir}),
            embeddings=minilm,
            url_for=result.url_for,
        )
        return result, summary

    first, summary = run()
    assert summary.embedded == summary.chunks > 0
    assert summary.documents == len(PAGES) and summary.skipped == 0
    # Every chunk carries its page's URL (not a canonical link or anything else).
    urls = chunk_urls(settings)
    assert urls == {path: {first.urls[path]} for path in urls}
    assert urls["docs/index.html"] == {url}
    assert urls["docs/guide/configuration.html"] == {f"{url}guide/configuration.html"}

    # Unchanged site: only conditional requests, all 304, nothing re-embedded.
    site.hits.clear()
    second, summary = run()
    pages = site.pages_hit()
    assert len(pages) == len(PAGES) + 1  # + search.html (noindex, kept aside for its links)
    assert all(h.conditional and h.if_none_match and h.status == 304 for h in pages)
    s = second.summary
    assert (s.not_modified, s.fetched, s.new, s.changed, s.removed) == (len(pages), 0, 0, 0, 0)
    assert summary.embedded == 0 and not summary.changed
    assert second.urls == first.urls

    # One page changes, one disappears.
    page = site.root / "docs" / "guide" / "configuration.html"
    page.write_text(page.read_text().replace("default is 128", "default is 256"), encoding="utf-8")
    (site.root / "docs" / "faq.html").unlink()
    site.hits.clear()
    third, summary = run()
    s = third.summary
    assert (s.fetched, s.changed, s.removed) == (1, 1, 1)
    assert s.not_modified == len(PAGES) + 1 - 2
    assert [h.path for h in site.pages_hit() if h.status == 200] == [
        "/docs/guide/configuration.html"
    ]
    assert s.skipped_pages == [{"url": f"{url}faq.html", "reason": "HTTP 404"}]
    assert (summary.updated, summary.deleted) == (1, 1)
    assert 0 < summary.embedded < summary.chunks
    assert not (third.mirror_dir / "docs" / "faq.html").exists()
    urls = chunk_urls(settings)
    assert "docs/faq.html" not in urls
    assert urls["docs/guide/configuration.html"] == {f"{url}guide/configuration.html"}


# --- the command ------------------------------------------------------------------------------


def test_cli_url_json(site: DocsServer, settings: Settings, monkeypatch, capsys) -> None:
    monkeypatch.setenv("INDEX_DIR", str(settings.index_dir))
    monkeypatch.setenv("CRAWL_DELAY_S", "0")
    code = main(["--url", f"{site.base}/docs/", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["crawl"]["pages"] == len(PAGES) and out["crawl"]["fetched"] == len(PAGES) + 1
    assert out["documents"] == len(PAGES) and out["embedded"] > 0

    # DOCS_URL does the same; the re-crawl finds nothing new.
    monkeypatch.setenv("DOCS_URL", f"{site.base}/docs/")
    code = main([])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"crawled {site.base}/docs/ (links): {len(PAGES)} pages")
    assert f"not modified {len(PAGES) + 1}," in lines[0]
    assert "embedded 0" in lines[1] and "index unchanged" in lines[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["unreachable", "not_html", "robots", "missing"])
def test_cli_fatal_errors_are_one_line(
    site: DocsServer, settings: Settings, monkeypatch, capsys, case: str
) -> None:
    monkeypatch.setenv("INDEX_DIR", str(settings.index_dir))
    url = f"{site.base}/docs/"
    expected = {
        "unreachable": "cannot reach 127.0.0.1",
        "not_html": "is not an HTML page",
        "robots": "disallows crawling",
        "missing": "HTTP 404",
    }[case]
    if case == "unreachable":
        url = f"http://127.0.0.1:{_closed_port()}/docs/"
    elif case == "not_html":
        url = f"{site.base}/docs/_static/basic.css"
    elif case == "robots":
        site.robots = "User-agent: corpusbot\nDisallow: /docs\n"
    else:
        url = f"{site.base}/nothing/here/"
    assert main(["--url", url]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err, err


def test_bad_urls_are_refused_before_any_request(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("INDEX_DIR", str(tmp_path / "index"))
    assert main(["--url", "ftp://docs.example.org/"]) == 1
    assert capsys.readouterr().err.strip() == "error: not an http(s) URL: 'ftp://docs.example.org/'"
    assert main(["--url", "https://x.example/", "--corpus", str(tmp_path)]) == 1
    assert "not both" in capsys.readouterr().err
    monkeypatch.setenv("DOCS_URL", "docs.example.org")
    assert main([]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: Invalid setting DOCS_URL: Value error, must be an http:// or https:// URL"
    assert not (tmp_path / "index").exists()


# --- URL -> file name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://d.example.org/", "index.html"),
        ("https://d.example.org/guide/", "guide/index.html"),
        ("https://d.example.org/guide/intro", "guide/intro.html"),
        ("https://d.example.org/a/b.htm", "a/b.htm"),
        ("https://d.example.org/api.php", "api.php.html"),
        ("https://d.example.org/../../etc/passwd", "etc/passwd.html"),
        ("https://d.example.org/x/%2e%2e/%2e%2e/y", "y.html"),
        ("https://d.example.org/x/%252e%252e/y", "x/_2e_2e/y.html"),
        ("https://d.example.org/a%2Fb%00c", "a_b_c.html"),
        ("https://d.example.org/.git/config", "_git/config.html"),
    ],
)
def test_mirror_paths_are_safe(url: str, path: str) -> None:
    normalized = normalize_url(url)
    assert normalized is not None
    got = mirror_path(normalized, "text/html")
    assert got == path
    assert not got.startswith("/") and ".." not in got.split("/")


def test_long_names_fit_a_file_system() -> None:
    for char in ("a", "\u6587"):  # 1 and 3 bytes in UTF-8
        path = mirror_path(f"https://d.example.org/{char * 400}", "text/html")
        assert len(path.encode()) <= 160 and path.endswith(".html")
        assert path != mirror_path(f"https://d.example.org/{char * 401}", "text/html")


def test_url_identity_and_prefix() -> None:
    assert normalize_url("HTTPS://Docs.Example.org:443/a?b=1#c") == "https://docs.example.org/a"
    assert normalize_url("mailto:x@example.org") is None
    assert url_prefix("https://d.example.org/docs") == "https://d.example.org/docs/"
    assert url_prefix("https://d.example.org/docs/index.html") == "https://d.example.org/docs/"


def test_refresh_index_follows_docs_url(site: DocsServer, settings: Settings, minilm) -> None:
    """What the bot's /reindex runs: with DOCS_URL the site, not CORPUS_DIR."""
    from index.crawl import refresh_index

    settings = settings.model_copy(update={"docs_url": f"{site.base}/docs/"})
    summary = refresh_index(settings, embeddings=minilm)
    assert summary.documents == len(PAGES) and summary.changed
    assert refresh_index(settings, embeddings=minilm).embedded == 0
    assert paths(site.pages_hit()) == PAGES | {"/docs/search.html"}


def test_bot_builds_its_missing_index_from_docs_url(site: DocsServer, settings: Settings) -> None:
    """With DOCS_URL the bot's first start crawls the site, and citations deep-link to pages."""
    from bot.service import build_service
    from bot.settings import BotSettings

    said: list[str] = []
    values = {**settings.model_dump(), "docs_url": f"{site.base}/docs/"}
    service = build_service(BotSettings(_env_file=None, **values), announce=said.append)
    assert said[0] == f"No index yet: building it from {site.base}/docs/..."
    assert said[1].startswith(f"crawled {site.base}/docs/ (links): {len(PAGES)} pages")
    answer = service.answer("How large is the in-memory read cache by default?")
    assert not answer.abstained
    # The page URL from the crawl, deep-linked to the section the quote is in.
    assert answer.citations[0].url == f"{site.base}/docs/guide/configuration.html#memory-limits"
    assert answer.citations[0].source == "docs/guide/configuration.html"
