"""`python -m index [--full] [--rebuild] [--allow-shrink] [--json] [--corpus DIR] [-v]`.

Build or refresh the index. `--rebuild` builds a fresh embedded store beside a damaged one
and switches to it; `--allow-shrink` accepts a corpus that lost most (or all) documents.

Exit status: 0 ok, 3 index built but some files were skipped, 1 fatal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from index.errors import CorpusBotError
from index.pipeline import reindex
from index.settings import load_settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FATAL, EXIT_SKIPPED = 0, 1, 3


def _parse(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        settings = load_settings()
    except CorpusBotError as err:  # ConfigError names the setting
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.corpus is not None:
        settings = settings.model_copy(update={"corpus_dir": args.corpus})
    try:
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
        print(json.dumps(summary.to_dict()))
    else:
        print(summary.line())
    if summary.documents == 0:
        print(f"warning: the corpus at {settings.corpus_dir} has no documents", file=sys.stderr)
    if summary.truncated_files and not args.json:
        print(
            f"warning: {len(summary.truncated_files)} file(s) were truncated to "
            f"MAX_CHUNKS_PER_DOCUMENT={settings.max_chunks_per_document} chunks",
            file=sys.stderr,
        )
    if summary.skipped:
        if not args.json:
            print(
                f"warning: {summary.skipped} file(s) were skipped; the index was built without them",
                file=sys.stderr,
            )
        return EXIT_SKIPPED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
