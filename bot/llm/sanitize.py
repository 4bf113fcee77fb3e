"""Text sanitising of model replies: pure functions, no model, no server.

[n] marker removal (`unmarked`), URLs kept only when a cited chunk has them
(`strip_foreign_urls`), API-key shapes redacted (`SECRET`), and the markdown shapes the
verifier and the claim checks must see through (images, links, autolinks, bare URLs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.documents import Document

# [1], [1, 2], [1 and 2], [Source 1]; not [1](url), which is a markdown link.
MARKER = re.compile(r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*(?:,|and)\s*\d{1,3})*)\s*\](?!\()", re.I)
IMAGE = re.compile(r"!\[[^\]\n]*\](?:\([^)\n]*\)|\[[^\]\n]*\])")
LINK = re.compile(r"\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>")
URL = re.compile(r"(?:https?|ftp)://[^\s<>()\[\]{}\"'`]+|\bwww\.[^\s<>()\[\]{}\"'`]+", re.I)
SECRET = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-*]{6,}")


def unmarked(text: str) -> str:
    """`text` without its [n] markers (and the space they leave before punctuation)."""
    text = MARKER.sub("", text)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def allowed_urls(docs: Sequence[Document]) -> set[str]:
    urls = set()
    for d in docs:
        if d.metadata.get("url"):
            urls.add(_norm_url(str(d.metadata["url"])))
        urls.update(_norm_url(u) for u in URL.findall(d.page_content))
    return urls


def _norm_url(url: str) -> str:
    return url.rstrip(".,;:!?").rstrip("/").lower()


def strip_foreign_urls(text: str, allowed: set[str]) -> str:
    """Keep only URLs that appear in the cited chunks (their text or `url` metadata)."""

    def link(m: re.Match[str]) -> str:
        return m.group(0) if _norm_url(m.group(2)) in allowed else m.group(1)

    def auto(m: re.Match[str]) -> str:
        return m.group(0) if _norm_url(m.group(1)) in allowed else ""

    def bare(m: re.Match[str]) -> str:
        url = m.group(0)
        trail = url[len(url.rstrip(".,;:!?")) :]
        return url if _norm_url(url) in allowed else trail

    text = LINK.sub(link, text)
    text = AUTOLINK.sub(auto, text)
    # Bare URLs outside kept markdown links: split so a kept link's target is not re-checked.
    parts = re.split(r"(\[[^\]\n]*\]\([^)\s]+\))", text)
    return "".join(p if i % 2 else URL.sub(bare, p) for i, p in enumerate(parts))
