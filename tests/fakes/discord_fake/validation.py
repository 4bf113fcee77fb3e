"""What the fake Discord checks of a message payload before storing it (Discord's 400s)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.fakes.discord_fake.protocol import (
    Json,
    _HttpError,
)


def _set_error(errors: Json, path: Sequence[str | int], code: str, message: str) -> None:
    node = errors
    for key in path:
        node = node.setdefault(str(key), {})
    node.setdefault("_errors", []).append({"code": code, "message": message})


def _max_len(errors: Json, path: Sequence[str | int], value: Any, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        _set_error(errors, path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _validate_message(msg: Json) -> None:
    """Raise HttpError like Discord does for a message body it would refuse."""
    errors: Json = {}
    _max_len(errors, ["content"], msg.get("content"), 2000)
    embeds = msg.get("embeds") or []
    if len(embeds) > 10:
        _set_error(errors, ["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        texts = [
            (["title"], embed.get("title"), 256),
            (["description"], embed.get("description"), 4096),
            (["footer", "text"], (embed.get("footer") or {}).get("text"), 2048),
            (["author", "name"], (embed.get("author") or {}).get("name"), 256),
        ]
        fields = embed.get("fields") or []
        if len(fields) > 25:
            _set_error(
                errors,
                ["embeds", i, "fields"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 25 or fewer in length.",
            )
        for j, f in enumerate(fields):
            texts.append((["fields", j, "name"], f.get("name"), 256))
            texts.append((["fields", j, "value"], f.get("value"), 1024))
        for path, value, limit in texts:
            _max_len(errors, ["embeds", i, *path], value, limit)
            total += len(value or "")
    if total > 6000:
        _set_error(
            errors, ["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )
    rows = msg.get("components") or []
    if len(rows) > 5:
        _set_error(errors, ["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    for i, row in enumerate(rows):
        for j, comp in enumerate(row.get("components") or []):
            _max_len(
                errors, ["components", i, "components", j, "custom_id"], comp.get("custom_id"), 100
            )
            _max_len(errors, ["components", i, "components", j, "label"], comp.get("label"), 80)
    if errors:
        raise _HttpError(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors})
    if not any(
        msg.get(k)
        for k in ("content", "embeds", "attachments", "components", "sticker_ids", "poll")
    ):
        raise _HttpError(400, {"message": "Cannot send an empty message", "code": 50006})
