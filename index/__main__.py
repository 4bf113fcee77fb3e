"""`python -m index [--full] [--rebuild] [--allow-shrink] [--json] [--corpus DIR | --url URL]
[-v] [--version]`: build or refresh the index.

`--rebuild` builds a fresh embedded store beside a damaged one and switches to it;
`--allow-shrink` accepts a corpus that lost most (or all) documents.

With `--url` (or DOCS_URL) the docs site is first mirrored into INDEX_DIR/crawl/ (index.crawl)
and that mirror is indexed instead of CORPUS_DIR.

Exit status (for cron): 0 ok (also when unsupported file types or empty files were ignored),
3 index built but some supported files (or crawled pages) were skipped as broken (each listed
with its reason), 1 fatal error (nothing changed: the previous index stays active), 130
interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from index.errors import CorpusBotError
from index.logs import configure_logging, package_version
from index.pipeline import reindex
from index.settings import load_settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FATAL, EXIT_SKIPPED = 0, 1, 3
# Skip reasons that are reported but do not make the run exit 3: nothing was lost.
HARMLESS_SKIPS = frozenset({"empty file"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m index", description="Index the corpus into Chroma (incremental)."
    )
    parser.add_argument("--full", action="store_true", help="re-embed everything")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="build a fresh store beside a damaged one (never reads it), switch, remove it",
    )
    parser.add_argument(
        "--allow-shrink",
        action="store_true",
        help="accept a corpus with less than half of the indexed documents, or none",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )
    parser.add_argument("--corpus", type=Path, metavar="DIR", help="corpus directory (CORPUS_DIR)")
    parser.add_argument(
        "--url",
        metavar="URL",
        help="crawl this docs site into INDEX_DIR/crawl/ and index it (DOCS_URL)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"corpusbot {package_version()}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except CorpusBotError as err:  # ConfigError names the setting
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    configure_logging("DEBUG" if args.verbose else settings.log_level)
    if args.corpus is not None and args.url:
        print("error: give --corpus or --url, not both", file=sys.stderr)
        return EXIT_FATAL
    if args.corpus is not None:
        settings = settings.model_copy(update={"corpus_dir": args.corpus})
    url = args.url or (settings.docs_url if args.corpus is None else None)
    crawl = None
    try:
        if url:
            from index.crawl import crawl_and_index

            crawl, summary = crawl_and_index(settings, url, full=args.full, progress=not args.json)
        else:
            summary = reindex(
                settings,
                full=args.full,
                progress=not args.json,
                allow_shrink=args.allow_shrink,
                rebuild=args.rebuild,
            )
    except CorpusBotError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("interrupted; the previous index is still active", file=sys.stderr)
        return 130
    if args.json:
        out = summary.to_dict()
        if crawl is not None:
            out["crawl"] = crawl.summary.to_dict()
        print(json.dumps(out))
    else:
        if crawl is not None:
            print(crawl.summary.line())
        print(summary.line())
    if summary.documents == 0:
        print(f"warning: the corpus at {settings.corpus_dir} has no documents", file=sys.stderr)
    if summary.truncated_files and not args.json:
        print(
            f"warning: {len(summary.truncated_files)} file(s) were truncated to "
            f"MAX_CHUNKS_PER_DOCUMENT={settings.max_chunks_per_document} chunks",
            file=sys.stderr,
        )
    broken = [s for s in summary.skipped_files if s["reason"] not in HARMLESS_SKIPS]
    pages_skipped = crawl.summary.skipped if crawl is not None else 0
    if pages_skipped and not args.json:
        print(
            f"warning: {pages_skipped} page(s) could not be fetched; "
            "the index was built without them",
            file=sys.stderr,
        )
    if summary.skipped and not args.json:
        print(
            f"warning: {summary.skipped} file(s) were skipped; the index was built without them",
            file=sys.stderr,
        )
    return EXIT_SKIPPED if broken or pages_skipped else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
