"""Wire-level pieces of the fake Discord: constants (permissions, intents, flags, channel
types), snowflakes, recorded requests, fault rules, gateway sessions, JSON responses."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

try:
    import zstandard
except ImportError:  # then discord.py asks for zlib-stream instead
    zstandard = None


log = logging.getLogger(__name__)

T = TypeVar("T")
Json = dict[str, Any]

API_VERSION = 10
DISCORD_EPOCH_MS = 1420070400000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MEMBER_PERMISSIONS = (
    (1 << 6)  # ADD_REACTIONS
    | (1 << 10)  # VIEW_CHANNEL
    | (1 << 11)  # SEND_MESSAGES
    | (1 << 14)  # EMBED_LINKS
    | (1 << 15)  # ATTACH_FILES
    | (1 << 16)  # READ_MESSAGE_HISTORY
    | (1 << 31)  # USE_APPLICATION_COMMANDS
    | (1 << 35)  # CREATE_PUBLIC_THREADS
    | (1 << 38)  # SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = MEMBER_PERMISSIONS | (1 << 13) | (1 << 34)  # + MANAGE_MESSAGES, MANAGE_THREADS

INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7

MSG_DEFAULT, MSG_REPLY, MSG_CHAT_INPUT = 0, 19, 20
CHANNEL_TEXT, CHANNEL_DM, CHANNEL_PUBLIC_THREAD, CHANNEL_FORUM = 0, 1, 11, 15
GUILD_CHANNEL_TYPES = (CHANNEL_TEXT, CHANNEL_FORUM)  # GUILD_CREATE "channels"; the rest are threads
CONTEXT_GUILD, CONTEXT_BOT_DM = 0, 1  # an interaction's "context"
# What an app may do in its DM with a user (no guild roles there, so no threads or management).
DM_PERMISSIONS = (1 << 6) | (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31)
INTERACTION_COMMAND, INTERACTION_COMPONENT = 2, 3
COMMAND_CHAT_INPUT, COMMAND_USER, COMMAND_MESSAGE = 1, 2, 3  # application command types

_MENTION = re.compile(r"<@!?(\d+)>")
_NO_AUTH_ROUTES = re.compile(r"^/(interactions|webhooks)/")


def snowflake(at_ms: int | None = None, *, increment: int = 0) -> int:
    """A Discord id for a moment (now by default): ms since the Discord epoch, shifted left 22."""
    ms = int(time.time() * 1000) if at_ms is None else at_ms
    return ((ms - DISCORD_EPOCH_MS) << 22) | (increment & 0xFFF)


def snowflake_time_ms(value: int) -> int:
    """The Unix ms a snowflake was minted at."""
    return (int(value) >> 22) + DISCORD_EPOCH_MS


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class RecordedRequest:
    method: str
    path: str  # below the API base, e.g. "/channels/1/messages"
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None  # the JSON body, or the parsed payload_json of a multipart body
    files: list[Json] = field(default_factory=list)  # {"field", "filename", "content_type", "data"}
    status: int = 0  # the response status (0 while in flight)
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)


@dataclass
class _FailRule:
    method: str
    pattern: re.Pattern[str]
    status: int
    retry_after: float
    global_: bool
    times: int
    body: Json | None


@dataclass
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    encode: Callable[[str], bytes] | None  # the stream compressor the client asked for


@dataclass
class _Session:
    id: str
    intents: int
    lock: asyncio.Lock
    seq: int = 0
    buffer: list[Json] = field(default_factory=list)  # every dispatch, for RESUME replay
    conn: _Conn | None = None


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    user: Json
    message_id: int | None = None  # the message a component sits on
    response_type: int | None = None
    original_id: int | None = None


class _HttpError(Exception):
    def __init__(self, status: int, body: Json) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _not_found(what: str, code: int) -> _HttpError:
    return _HttpError(404, {"message": f"Unknown {what}", "code": code})


def _encoder(compress: str | None) -> Callable[[str], bytes] | None:
    if compress == "zlib-stream":
        z = zlib.compressobj()
        return lambda text: z.compress(text.encode()) + z.flush(zlib.Z_SYNC_FLUSH)
    if compress == "zstd-stream" and zstandard is not None:
        # One zstd frame for the whole connection, flushed per message (discord.py decompresses
        # each websocket message with a single streaming decompressobj).
        c = zstandard.ZstdCompressor().compressobj()
        return lambda text: c.compress(text.encode()) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    if compress:
        raise ValueError(f"unsupported compress={compress!r}")
    return None


def _guild_of(item: Json) -> Json:
    """{"guild_id": ...} of a guild channel or message, {} for a DM's (DM payloads omit it)."""
    return {"guild_id": item["guild_id"]} if "guild_id" in item else {}


def _usable_in_dms(command: Json) -> bool:
    contexts = command.get("contexts")
    if contexts is not None:
        return CONTEXT_BOT_DM in contexts
    return command.get("dm_permission") is not False


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py parses JSON only for that content type (no charset).
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _failure(rule: _FailRule) -> web.Response:
    if rule.status != 429:
        return _json_response(
            rule.status, rule.body or {"message": f"{rule.status}: injected failure", "code": 0}
        )
    body = rule.body or {
        "message": "You are being rate limited.",
        "retry_after": rule.retry_after,
        "global": rule.global_,
    }
    headers = {
        "Via": "1.1 google",  # discord.py treats a 429 without Via as a Cloudflare ban
        "Retry-After": str(max(1, round(rule.retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}",
        "X-RateLimit-Bucket": f"fake{zlib.crc32(rule.pattern.pattern.encode()):08x}",
        "X-RateLimit-Scope": "global" if rule.global_ else "user",
    }
    if rule.global_:
        headers["X-RateLimit-Global"] = "true"
    return _json_response(429, body, headers)
