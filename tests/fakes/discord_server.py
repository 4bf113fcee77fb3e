"""A fake Discord (REST + gateway websocket) on 127.0.0.1 that the real discord.py client logs into.

It speaks the wire protocol discord.py 2.7 uses, so end-to-end tests run the real client, with its
real rate-limit handling, gateway resume and interaction plumbing, against one guild we control.
The server runs on its own event loop in a background thread: the client under test runs in the
test's loop, and sync or async tests can drive the server alike.

Pointing discord.py at it (the ``fake_discord`` fixture in tests/fixtures/discord.py does this)::

    discord.http.Route.BASE = fake.api_base                      # "http://127.0.0.1:PORT/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

``FakeDiscord(*, token, bot_name, guild_name, channels, forums, members, admins,
heartbeat_interval_ms)`` (all keyword, all defaulted) builds one guild: text channels named by
``channels``, forum channels (type 15, in ``channel_ids`` too) named by ``forums``, the @everyone
role (``MEMBER_PERMISSIONS``), an "Admin" role (administrator) held by ``admins``, a bot role
(``BOT_PERMISSIONS``), the members plus the bot. ``start()`` / ``stop()`` (or ``with``).
Each member also has a DM channel with the bot (type 1, ``recipients: [user]``, no guild_id),
opened on first use like Discord's: by ``POST /users/@me/channels`` (user.create_dm()),
``dm_channel_id(user)``, ``send_dm`` or ``send_slash(dm=True)``. Discord sends bots no
CHANNEL_CREATE for DMs (discord.py would drop one without a guild anyway): discord.py builds the
DMChannel from a MESSAGE_CREATE that has no guild_id, and the interaction's "channel" object.

State, ids are ints; payloads are JSON dicts exactly as Discord sends them:
    token, application_id, bot_id, bot_user, guild_id, channel_ids {name: id}, users {name: user},
    everyone_role_id, admin_role_id, bot_role_id, api_base, gateway_url, resume_gateway_url

Injecting what users do (thread-safe, each returns the dispatched payload; a ``user``/``author`` is a
member name or a user dict; ``channel_id`` defaults to the first channel):
    send_message(channel_id, author, content, *, mentions=(), message_reference=None, embeds=())
        -> MESSAGE_CREATE. ``<@id>`` mentions in content are parsed like Discord does; ``mentions``
        adds more (e.g. the replied-to author of a pinging reply). message_reference: msg dict or id.
    send_dm(author, content, *, message_reference=None, embeds=())
        -> MESSAGE_CREATE in the author's DM channel, without guild_id and member.
    dm_channel_id(user) -> the id of the user's DM channel with the bot (opened if needed).
    send_slash(command_name, options=None, user="alice", channel_id=None, *, guild_id=None,
               permissions=None, dm=False)
        -> INTERACTION_CREATE type 2. options: {name: value} (str/int/float/bool/user dict) or a raw
        option list. The command id is the synced one when the bot synced it. ``permissions`` (an
        int or string bitfield; constants below) defaults to what the member's roles grant.
        ``dm=True``: in the user's DM, with "user" instead of "member", no guild, context 1; like
        Discord, only a synced global command usable in DMs (contexts / dm_permission) can be
        used there (else ValueError).
    create_forum_post(forum_id, author, title, content, *, dispatch_message=True,
                      message_first=False) -> (thread, starter message)
        -> a post like Discord's: a public thread (owner = author) whose starter message has the
        thread's id; THREAD_CREATE (newly_created) then the starter's MESSAGE_CREATE
        (``message_first``: reversed; ``dispatch_message=False``: none, the bot must fetch it).
    send_message_command(command_name, message, user="alice", *, permissions=None)
        -> INTERACTION_CREATE type 2 for a synced message context-menu command (type 3) on a
        stored message: ``target_id`` and ``resolved.messages``.
    click_button(message, custom_id, user="alice", *, component_type=2, values=None)
        -> INTERACTION_CREATE type 3 carrying the stored (current) message (DM-shaped in a DM).
    react(message, emoji, user="alice") -> MESSAGE_REACTION_ADD
    dispatch(event, data) -> any dispatch event, with the session's next sequence number.
Interactions get fresh snowflake ids (discord.py treats old ids as expired) and random tokens.

Gateway: HELLO -> IDENTIFY -> READY (resume_gateway_url = ``/resume`` on this server) + GUILD_CREATE;
heartbeat ACKs; REQUEST_GUILD_MEMBERS -> one GUILD_MEMBERS_CHUNK; RESUME replays the events the
client missed, then RESUMED (unknown session -> INVALID_SESSION false). Frames are compressed the way
the client asks in the URL (``compress=zstd-stream``: one zstd frame flushed per message, which is
what discord.py picks when ``zstandard`` is importable; ``zlib-stream``: Z_SYNC_FLUSH), else text.
Like Discord, the bot receives MESSAGE_CREATE/UPDATE/DELETE for its own REST and webhook messages
(not ephemeral ones), guild messages only with the GUILD_MESSAGES intent, DMs only with the
DIRECT_MESSAGES intent, and without the MESSAGE_CONTENT intent content/embeds/attachments/
components of guild messages are blanked unless the bot wrote the message or is mentioned in it
(DM content is always delivered); GUILD_CREATE lists all members only with the GUILD_MEMBERS intent
(else just the bot; fetch_member works either way).
    drop_gateway(*, code=4000, abrupt=False): detaches the session (later events are buffered for
        the resume) and closes the socket with ``code``, or aborts the TCP connection.
    gateway_log: every op the client sent [{"op", "d", "path"}]; gateway_connections:
        [{"path", "query"}] per websocket; events(name=None): dispatches sent (with "s").

REST (``/api/v10``; ``Authorization: Bot <token>`` required except on interaction/webhook token
routes, anything else -> 401 {"message": "401: Unauthorized", "code": 0}, which login turns into
LoginFailure): GET /gateway, /gateway/bot, /users/@me, /oauth2/applications/@me, /channels/{c},
POST /users/@me/channels {"recipient_id"} (the DM channel; unknown user -> 400 code 50033),
/channels/{c}/messages (limit, before, after), /channels/{c}/messages/{m}, /guilds/{g}/members/{u};
POST/PATCH/DELETE channel messages (JSON or multipart with payload_json + files[n]); PUT/DELETE
own reactions; POST /channels/{c}/typing; POST /channels/{c}/messages/{m}/threads (thread id ==
message id, like Discord) and /channels/{c}/threads (both dispatch THREAD_CREATE; in a DM -> 400
code 50024; in a forum: a post with body ``message`` as its starter, returned as ``message``;
POST /channels/{forum}/messages -> 400 code 50008); POST
/interactions/{id}/{token}/callback (types 4, 5, 6, 7, 8, 9; ``with_response`` honoured; a second
ack -> 400 code 40060); POST /webhooks/{app}/{token} (follow-ups; before the ack -> 404);
GET/PATCH/DELETE /webhooks/{app}/{token}/messages/{@original|id}; GET/PUT
/applications/{app}/commands and /applications/{app}/guilds/{g}/commands (echoed with ids).
Message bodies are validated like Discord: empty -> 400 code 50006; content > 2000, > 10 embeds,
embed field/total limits (6000), > 5 action rows, custom_id > 100 -> 400 code 50035 "Invalid Form
Body" with Discord's nested ``errors``. A reply to an unknown message -> 400 code 50035 too.
Unknown routes -> 404 {"message": "404: Not Found", "code": 0}, listed in ``unknown_routes``.
    fail_next(method, path_regex, *, status=429, retry_after=0.3, global_=False, times=1, body=None):
        the next ``times`` matching requests fail; 429s carry Discord's JSON and headers (Via,
        Retry-After, X-RateLimit-*), so discord.py sleeps and retries.

Inspecting (thread-safe copies):
    requests: [RecordedRequest(method, path, query, headers, json, files, status, at)], path below
        /api/v10, json = the JSON body or the parsed payload_json, status = the response status.
    message_requests(): the requests that create or edit message content (channel messages,
        interaction callbacks with data, webhooks), failed attempts included (see ``status``).
    messages_in(channel_id, *, author_id=None): stored messages, oldest first (ephemeral
        interaction messages too: flags & 64); message(message_id); commands(guild_id=None).
    await wait_for(predicate, timeout=5.0) / wait_for_sync(...): poll a no-argument predicate
        until it returns something truthy, return that, else raise TimeoutError.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import itertools
import json
import logging
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

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


class FakeDiscord:
    """One fake Discord: a guild, its channels and members, REST and gateway (see module doc)."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "corpusbot",
        guild_name: str = "Test Guild",
        channels: Sequence[str] = ("general", "random"),
        forums: Sequence[str] = (),
        members: Sequence[str] = ("alice", "bob"),
        admins: Sequence[str] = ("alice",),
        heartbeat_interval_ms: int = 5000,
    ) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._ids = itertools.count(1)
        self.application_id = self._snowflake()
        self.bot_id = self.application_id  # bots share their application's id
        self.bot_user = self._make_user(bot_name, self.bot_id, bot=True)
        self.guild_id = self._snowflake()
        self.guild_name = guild_name
        self.everyone_role_id = self.guild_id  # Discord gives @everyone the guild's id
        self.admin_role_id = self._snowflake()
        self.bot_role_id = self._snowflake()
        self.users: dict[str, Json] = {
            name: self._make_user(name, self._snowflake()) for name in members
        }
        self._member_roles: dict[int, list[int]] = {
            int(u["id"]): [self.admin_role_id] if name in admins else []
            for name, u in self.users.items()
        }
        self._member_roles[self.bot_id] = [self.bot_role_id]
        self._joined_at = _now_iso()
        self._channels: dict[int, Json] = {}
        self.channel_ids: dict[str, int] = {}
        for position, name in enumerate(channels):
            cid = self._snowflake()
            self.channel_ids[name] = cid
            self._channels[cid] = self._text_channel(cid, name, position)
        for position, name in enumerate(forums, len(channels)):
            cid = self._snowflake()
            self.channel_ids[name] = cid
            self._channels[cid] = self._text_channel(cid, name, position) | {
                "type": CHANNEL_FORUM,
                "available_tags": [],
                "default_reaction_emoji": None,
                "default_sort_order": None,
                "default_forum_layout": 0,
                "default_thread_rate_limit_per_user": 0,
                "default_auto_archive_duration": 1440,
            }
        self._dm_ids: dict[int, int] = {}  # user id -> their DM channel with the bot
        self._messages: dict[int, Json] = {}
        self._channel_messages: dict[int, list[int]] = {}
        self._interactions: dict[int, _Interaction] = {}
        self._commands: dict[int | None, list[Json]] = {}
        self._requests: list[RecordedRequest] = []
        self._unknown: list[tuple[str, str]] = []
        self._fail_rules: list[_FailRule] = []
        self._sessions: dict[str, _Session] = {}
        self._active: _Session | None = None
        self._conns: list[_Conn] = []
        self._gateway_log: list[Json] = []
        self._gateway_connections: list[Json] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            (m, re.compile(f"^{p}$"), h)
            for m, p, h in [
                ("GET", r"/gateway", self._get_gateway),
                ("GET", r"/gateway/bot", self._get_gateway_bot),
                ("GET", r"/users/@me", self._get_me),
                ("GET", r"/oauth2/applications/@me", self._get_application),
                ("POST", r"/users/@me/channels", self._create_dm),
                ("GET", r"/guilds/(\d+)/members/(\d+)", self._get_member),
                ("GET", r"/channels/(\d+)", self._get_channel),
                ("GET", r"/channels/(\d+)/messages", self._get_history),
                ("POST", r"/channels/(\d+)/messages", self._post_message),
                ("GET", r"/channels/(\d+)/messages/(\d+)", self._get_message),
                ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._patch_message),
                ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete_message),
                (
                    "PUT",
                    r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me",
                    self._own_reaction,
                ),
                (
                    "DELETE",
                    r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me",
                    self._own_reaction,
                ),
                ("POST", r"/channels/(\d+)/typing", self._typing),
                ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._thread_from_message),
                ("POST", r"/channels/(\d+)/threads", self._thread_without_message),
                ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._interaction_callback),
                ("POST", r"/webhooks/(\d+)/([^/]+)", self._webhook_execute),
                ("GET", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_message),
                (
                    "PATCH",
                    r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)",
                    self._webhook_message,
                ),
                (
                    "DELETE",
                    r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)",
                    self._webhook_message,
                ),
                ("GET", r"/applications/(\d+)/commands", self._get_commands),
                ("PUT", r"/applications/(\d+)/commands", self._put_commands),
                ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._get_commands),
                ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_commands),
            ]
        ]

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeDiscord:
        self._loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="fake-discord", daemon=True
        )
        self._thread.start()
        started.result(timeout=10)
        log.debug("fake discord on 127.0.0.1:%d", self.port)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeDiscord:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # report to start() instead of dying silently
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        loop.run_forever()
        loop.close()

    async def _startup(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._gateway)
        app.router.add_get("/resume", self._gateway)
        app.router.add_route("*", f"/api/v{API_VERSION}/{{tail:.*}}", self._api)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        for conn in list(self._conns):
            await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/resume"

    # ---- cross-thread plumbing -------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run fn on the server loop (all state lives there), from any thread."""
        if self._thread is None or threading.get_ident() == self._thread.ident:
            return fn()
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def _run_coro(self, coro: Any) -> Any:
        if self._loop is None or self._thread is None:
            raise RuntimeError("FakeDiscord is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _snowflake(self) -> int:
        return snowflake(increment=next(self._ids))

    # ---- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._call(lambda: copy.deepcopy(self._requests))

    @property
    def unknown_routes(self) -> list[tuple[str, str]]:
        return self._call(lambda: list(self._unknown))

    @property
    def gateway_log(self) -> list[Json]:
        return self._call(lambda: copy.deepcopy(self._gateway_log))

    @property
    def gateway_connections(self) -> list[Json]:
        return self._call(lambda: copy.deepcopy(self._gateway_connections))

    def events(self, name: str | None = None) -> list[Json]:
        """Dispatch frames sent to the current session ({"op": 0, "t", "s", "d"})."""

        def get() -> list[Json]:
            frames = self._active.buffer if self._active else []
            return copy.deepcopy([f for f in frames if name is None or f["t"] == name])

        return self._call(get)

    def message_requests(self) -> list[RecordedRequest]:
        def creates_content(r: RecordedRequest) -> bool:
            if re.fullmatch(r"/channels/\d+/messages(/\d+)?", r.path):
                return r.method in ("POST", "PATCH")
            if r.path.startswith("/interactions/"):
                return (
                    isinstance(r.json, dict)
                    and r.json.get("type") in (4, 7)
                    and bool(r.json.get("data"))
                )
            if r.path.startswith("/webhooks/"):
                return r.method in ("POST", "PATCH")
            return False

        return [r for r in self.requests if creates_content(r)]

    def messages_in(self, channel_id: int, *, author_id: int | None = None) -> list[Json]:
        def get() -> list[Json]:
            msgs = [
                self._messages[i]
                for i in self._channel_messages.get(int(channel_id), [])
                if i in self._messages
            ]
            return copy.deepcopy(
                [m for m in msgs if author_id is None or int(m["author"]["id"]) == author_id]
            )

        return self._call(get)

    def message(self, message_id: int) -> Json | None:
        return self._call(lambda: copy.deepcopy(self._messages.get(int(message_id))))

    def commands(self, guild_id: int | None = None) -> list[Json]:
        return self._call(lambda: copy.deepcopy(self._commands.get(guild_id, [])))

    async def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, interval: float = 0.01
    ) -> T:
        """Await until predicate() is truthy; return its value. For async tests (never blocks the loop)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(timeout))
            await asyncio.sleep(interval)

    def wait_for_sync(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, interval: float = 0.01
    ) -> T:
        """Block until predicate() is truthy; for sync tests whose client runs in another thread."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(self._timeout_message(timeout))
            time.sleep(interval)

    def _timeout_message(self, timeout: float) -> str:
        recent = [f"{r.method} {r.path} -> {r.status}" for r in self.requests[-8:]]
        return f"condition not met within {timeout}s; last requests: {recent}"

    # ---- configuration ---------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 429,
        retry_after: float = 0.3,
        global_: bool = False,
        times: int = 1,
        body: Json | None = None,
    ) -> None:
        """Fail the next `times` requests whose path (below /api/v10) matches path_regex."""
        rule = _FailRule(
            method.upper(), re.compile(path_regex), status, retry_after, global_, times, body
        )
        self._call(lambda: self._fail_rules.append(rule))

    # ---- injection (what users do) ---------------------------------------------------------

    def dispatch(self, event: str, data: Json) -> None:
        self._run_coro(self._dispatch(event, data))

    def send_message(
        self,
        channel_id: int | None,
        author: str | Json,
        content: str,
        *,
        mentions: Sequence[str | Json] = (),
        message_reference: Json | int | None = None,
        embeds: Sequence[Json] = (),
    ) -> Json:
        user = self._user(author)
        return self._run_coro(
            self._user_message(
                lambda: self._channel(channel_id),
                user,
                content,
                mentions=[self._user(m) for m in mentions],
                message_reference=message_reference,
                embeds=embeds,
            )
        )

    def send_dm(
        self,
        author: str | Json,
        content: str,
        *,
        message_reference: Json | int | None = None,
        embeds: Sequence[Json] = (),
    ) -> Json:
        """``author`` writes to the bot in their DM (opened if needed): MESSAGE_CREATE, no guild."""
        user = self._user(author)
        return self._run_coro(
            self._user_message(
                lambda: self._open_dm(user),
                user,
                content,
                mentions=[],
                message_reference=message_reference,
                embeds=embeds,
            )
        )

    def create_forum_post(
        self,
        forum_id: int,
        author: str | Json,
        title: str,
        content: str,
        *,
        dispatch_message: bool = True,
        message_first: bool = False,
    ) -> tuple[Json, Json]:
        """``author`` opens a post in a forum channel: THREAD_CREATE (newly_created), then the
        starter message's MESSAGE_CREATE (``message_first``: the other way round;
        ``dispatch_message=False``: none, so the bot has to fetch it). Returns (thread, message)."""
        user = self._user(author)

        async def go() -> tuple[Json, Json]:
            forum = self._channel(forum_id)
            if forum["type"] != CHANNEL_FORUM:
                raise ValueError(f"channel {forum_id} is not a forum")
            return await self._forum_post(
                forum,
                user,
                title,
                {"content": content},
                dispatch_message=dispatch_message,
                message_first=message_first,
            )

        return self._run_coro(go())

    def send_message_command(
        self,
        command_name: str,
        message: Json | int,
        user: str | Json = "alice",
        *,
        permissions: int | str | None = None,
    ) -> Json:
        """``user`` runs a message context-menu command (app command type 3) on ``message``:
        INTERACTION_CREATE type 2 with ``target_id`` and ``resolved.messages``."""
        member_user = self._user(user)

        async def go() -> Json:
            msg = self._get_stored(message["id"] if isinstance(message, dict) else message)
            channel = self._channel(int(msg["channel_id"]))
            offered = self._commands.get(self.guild_id, []) + self._commands.get(None, [])
            cmd = next(
                (
                    c
                    for c in offered
                    if c["name"] == command_name and c.get("type") == COMMAND_MESSAGE
                ),
                None,
            )
            if cmd is None:
                raise ValueError(f"no message command {command_name!r} was synced")
            data: Json = {
                "id": cmd["id"],
                "name": command_name,
                "type": COMMAND_MESSAGE,
                "target_id": msg["id"],
                "resolved": {"messages": {msg["id"]: copy.deepcopy(msg)}},
            }
            if cmd.get("guild_id"):
                data["guild_id"] = cmd["guild_id"]
            payload = self._interaction_payload(
                INTERACTION_COMMAND, member_user, channel, data, permissions
            )
            await self._dispatch("INTERACTION_CREATE", payload)
            return copy.deepcopy(payload)

        return self._run_coro(go())

    def dm_channel_id(self, user: str | Json) -> int:
        """The id of ``user``'s DM channel with the bot, opening it if needed."""
        who = self._user(user)
        return self._call(lambda: int(self._open_dm(who)["id"]))

    async def _user_message(
        self,
        channel: Callable[[], Json],
        user: Json,
        content: str,
        *,
        mentions: list[Json],
        message_reference: Json | int | None,
        embeds: Sequence[Json],
    ) -> Json:
        payload: Json = {"content": content, "embeds": list(embeds)}
        if message_reference is not None:
            ref_id = (
                message_reference["id"]
                if isinstance(message_reference, dict)
                else message_reference
            )
            payload["message_reference"] = {"message_id": str(ref_id)}
        msg = self._new_message(channel(), user, payload)
        parsed = [self._user_by_id(int(i)) for i in _MENTION.findall(content)]
        seen: set[str] = set()
        msg["mentions"] = [
            u for u in mentions + parsed if u and not (u["id"] in seen or seen.add(u["id"]))
        ]
        self._store(msg)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return copy.deepcopy(msg)

    def send_slash(
        self,
        command_name: str,
        options: dict[str, Any] | list[Json] | None = None,
        user: str | Json = "alice",
        channel_id: int | None = None,
        *,
        guild_id: int | None = None,
        permissions: int | str | None = None,
        dm: bool = False,
    ) -> Json:
        member_user = self._user(user)
        if guild_id not in (None, self.guild_id):
            raise ValueError(f"the fake has one guild, {self.guild_id}")
        if dm and channel_id is not None:
            raise ValueError("a DM slash command runs in the user's DM; leave channel_id None")

        async def go() -> Json:
            channel = self._open_dm(member_user) if dm else self._channel(channel_id)
            # Discord offers only global commands in DMs, and not those restricted to guilds.
            guild_commands = [] if dm else self._commands.get(self.guild_id, [])
            offered = guild_commands + self._commands.get(None, [])
            cmd = next(
                (
                    c
                    for c in offered
                    if c["name"] == command_name
                    and c.get("type", 1) == 1
                    and (not dm or _usable_in_dms(c))
                ),
                None,
            )
            if dm and cmd is None:
                raise ValueError(f"Discord offers no global DM command {command_name!r} to use")
            data: Json = {
                "id": cmd["id"] if cmd else str(self._snowflake()),
                "name": command_name,
                "type": 1,
            }
            if cmd and cmd.get("guild_id"):
                data["guild_id"] = cmd["guild_id"]
            raw, resolved = self._options(options)
            if raw:
                data["options"] = raw
            if resolved:
                data["resolved"] = resolved
            payload = self._interaction_payload(
                INTERACTION_COMMAND, member_user, channel, data, permissions
            )
            await self._dispatch("INTERACTION_CREATE", payload)
            return copy.deepcopy(payload)

        return self._run_coro(go())

    def click_button(
        self,
        message: Json | int,
        custom_id: str,
        user: str | Json = "alice",
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
    ) -> Json:
        member_user = self._user(user)

        async def go() -> Json:
            msg = self._get_stored(message["id"] if isinstance(message, dict) else message)
            channel = self._channel(int(msg["channel_id"]))
            data: Json = {"custom_id": custom_id, "component_type": component_type}
            if values is not None:
                data["values"] = list(values)
            payload = self._interaction_payload(
                INTERACTION_COMPONENT, member_user, channel, data, None
            )
            payload["message"] = copy.deepcopy(msg)
            self._interactions[int(payload["id"])].message_id = int(msg["id"])
            await self._dispatch("INTERACTION_CREATE", payload)
            return copy.deepcopy(payload)

        return self._run_coro(go())

    def react(self, message: Json | int, emoji: str, user: str | Json = "alice") -> Json:
        reactor = self._user(user)

        async def go() -> Json:
            msg = self._get_stored(message["id"] if isinstance(message, dict) else message)
            payload = {
                "user_id": reactor["id"],
                "channel_id": msg["channel_id"],
                "message_id": msg["id"],
                "emoji": {"id": None, "name": emoji},
                "message_author_id": msg["author"]["id"],
                "burst": False,
                "type": 0,
            }
            if "guild_id" in msg:
                payload |= {"guild_id": msg["guild_id"], "member": self._member(reactor)}
            await self._dispatch("MESSAGE_REACTION_ADD", payload)
            return payload

        return self._run_coro(go())

    def drop_gateway(self, *, code: int = 4000, abrupt: bool = False) -> None:
        """Cut the bot's websocket; events until it RESUMEs are buffered and replayed then."""

        async def go() -> None:
            session = self._active
            if session is None or session.conn is None:
                raise RuntimeError("no gateway connection to drop")
            async with session.lock:
                conn, session.conn = session.conn, None
            if abrupt:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
            else:
                # close() waits for the client's close frame; don't hold the caller for that
                asyncio.get_running_loop().create_task(conn.ws.close(code=code))

        self._run_coro(go())

    # ---- payload builders ------------------------------------------------------------------

    @staticmethod
    def _make_user(name: str, uid: int, *, bot: bool = False) -> Json:
        user: Json = {
            "id": str(uid),
            "username": name,
            "discriminator": "0",
            "global_name": None if bot else name.title(),
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }
        if bot:
            user["bot"] = True
        return user

    def _user(self, who: str | Json) -> Json:
        if isinstance(who, dict):
            return who
        if who not in self.users:
            raise KeyError(f"no member named {who!r}; members: {sorted(self.users)}")
        return self.users[who]

    def _user_by_id(self, uid: int) -> Json | None:
        if uid == self.bot_id:
            return self.bot_user
        return next((u for u in self.users.values() if int(u["id"]) == uid), None)

    def _role(
        self, rid: int, name: str, permissions: int, position: int, *, managed: bool = False
    ) -> Json:
        return {
            "id": str(rid),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }

    def _text_channel(self, cid: int, name: str, position: int) -> Json:
        return {
            "id": str(cid),
            "type": CHANNEL_TEXT,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": position,
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }

    def _open_dm(self, user: Json) -> Json:
        """The user's DM channel with the bot; Discord keeps one per user, created on first use."""
        uid = int(user["id"])
        if uid not in self._dm_ids:
            cid = self._snowflake()
            self._dm_ids[uid] = cid
            self._channels[cid] = {
                "id": str(cid),
                "type": CHANNEL_DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [user],
            }
        return self._channels[self._dm_ids[uid]]

    def _member(self, user: Json, *, with_user: bool = True) -> Json:
        member: Json = {
            "roles": [str(r) for r in self._member_roles.get(int(user["id"]), [])],
            "nick": None,
            "avatar": None,
            "joined_at": self._joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }
        if with_user:
            member["user"] = user
        return member

    def _permissions_of(self, user: Json) -> int:
        roles = self._member_roles.get(int(user["id"]), [])
        perms = MEMBER_PERMISSIONS
        if self.admin_role_id in roles:
            perms |= ADMINISTRATOR
        if self.bot_role_id in roles:
            perms |= BOT_PERMISSIONS
        return perms

    def _guild_payload(self, intents: int) -> Json:
        everyone = [self.bot_user, *self.users.values()]
        # without the privileged GUILD_MEMBERS intent Discord sends only the bot's own member
        members = [
            self._member(u) for u in (everyone if intents & INTENT_GUILD_MEMBERS else everyone[:1])
        ]
        ours = [c for c in self._channels.values() if "guild_id" in c]  # not the DMs
        channels = [c for c in ours if c["type"] in GUILD_CHANNEL_TYPES]
        threads = [c for c in ours if c["type"] not in GUILD_CHANNEL_TYPES]
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(
                self._snowflake()
            ),  # an owner who is not a member: nobody gets all perms
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "features": [],
            "roles": [
                self._role(self.everyone_role_id, "@everyone", MEMBER_PERMISSIONS, 0),
                self._role(self.admin_role_id, "Admin", ADMINISTRATOR, 1),
                self._role(
                    self.bot_role_id, self.bot_user["username"], BOT_PERMISSIONS, 2, managed=True
                ),
            ],
            "emojis": [],
            "stickers": [],
            "joined_at": self._joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(everyone),
            "members": members,
            "channels": channels,
            "threads": threads,
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _channel(self, channel_id: int | None) -> Json:
        cid = next(iter(self.channel_ids.values())) if channel_id is None else int(channel_id)
        if cid not in self._channels:
            raise _not_found("Channel", 10003)
        return self._channels[cid]

    def _get_stored(self, message_id: int | str) -> Json:
        msg = self._messages.get(int(message_id))
        if msg is None:
            raise _not_found("Message", 10008)
        return msg

    def _options(self, options: dict[str, Any] | list[Json] | None) -> tuple[list[Json], Json]:
        if options is None:
            return [], {}
        if isinstance(options, list):
            return options, {}
        raw: list[Json] = []
        resolved: Json = {}
        for name, value in options.items():
            if isinstance(value, dict):  # a user
                raw.append({"name": name, "type": 6, "value": value["id"]})
                resolved.setdefault("users", {})[value["id"]] = value
                resolved.setdefault("members", {})[value["id"]] = self._member(
                    value, with_user=False
                ) | {"permissions": str(self._permissions_of(value))}
            elif isinstance(value, bool):
                raw.append({"name": name, "type": 5, "value": value})
            elif isinstance(value, int):
                raw.append({"name": name, "type": 4, "value": value})
            elif isinstance(value, float):
                raw.append({"name": name, "type": 10, "value": value})
            else:
                raw.append({"name": name, "type": 3, "value": str(value)})
        return raw, resolved

    def _interaction_payload(
        self, kind: int, user: Json, channel: Json, data: Json, permissions: int | str | None
    ) -> Json:
        iid = self._snowflake()
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
        self._interactions[iid] = _Interaction(iid, token, kind, int(channel["id"]), user)
        payload: Json = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": channel["id"],
            "channel": copy.deepcopy(channel),
            "token": token,
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": self._owners(channel),
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if channel["type"] == CHANNEL_DM:  # a DM: "user" instead of "member", no guild
            return payload | {
                "user": user,
                "app_permissions": str(DM_PERMISSIONS),
                "context": CONTEXT_BOT_DM,
            }
        perms = self._permissions_of(user) if permissions is None else int(permissions)
        return payload | {
            "guild_id": str(self.guild_id),
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "member": self._member(user) | {"permissions": str(perms)},
            "app_permissions": str(BOT_PERMISSIONS),
            "guild_locale": "en-US",
            "context": CONTEXT_GUILD,
        }

    def _owners(self, channel: Json) -> Json:
        # Installed to the guild (GUILD_INSTALL, key "0"): its id, or "0" in the bot's DM.
        return {"0": channel.get("guild_id", "0")}

    def _new_message(
        self,
        channel: Json,
        author: Json,
        payload: Json,
        *,
        files: Sequence[Json] = (),
        msg_type: int = MSG_DEFAULT,
        webhook_id: int | None = None,
        extra: Json | None = None,
    ) -> Json:
        mid = self._snowflake()
        msg: Json = {
            "id": str(mid),
            "channel_id": channel["id"],
            **_guild_of(channel),
            "author": author,
            "content": payload.get("content") or "",
            "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [],
            "attachments": self._attachments(payload, files, []),
            "flags": int(payload.get("flags") or 0),
            "tts": bool(payload.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "type": msg_type,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
        }
        if payload.get("nonce") is not None:
            msg["nonce"] = payload["nonce"]
        if webhook_id is not None:
            msg["webhook_id"] = str(webhook_id)
            msg["application_id"] = str(self.application_id)
        ref = payload.get("message_reference")
        if ref and ref.get("message_id"):
            target = self._messages.get(int(ref["message_id"]))
            if target is None:
                if ref.get("fail_if_not_exists", True):
                    raise _HttpError(
                        400,
                        {
                            "message": "Invalid Form Body",
                            "code": 50035,
                            "errors": {
                                "message_reference": {
                                    "_errors": [
                                        {
                                            "code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                            "message": "Unknown message",
                                        }
                                    ]
                                }
                            },
                        },
                    )
            else:
                msg["type"] = MSG_REPLY
                msg["message_reference"] = {
                    "type": 0,
                    "message_id": target["id"],
                    "channel_id": target["channel_id"],
                    **_guild_of(target),
                }
                msg["referenced_message"] = {
                    k: v for k, v in target.items() if k != "referenced_message"
                }
        if extra:
            msg.update(extra)
        _validate_message(msg)
        return msg

    def _attachments(
        self, payload: Json, files: Sequence[Json], existing: list[Json]
    ) -> list[Json]:
        """Keep the listed existing attachments, add one per uploaded file (files[n] <-> id n)."""
        listed = payload.get("attachments") or []
        by_id = {str(a["id"]): a for a in existing}
        out = [by_id[str(a["id"])] for a in listed if str(a.get("id")) in by_id]
        for f in files:
            meta = next((a for a in listed if f"files[{a.get('id')}]" == f["field"]), {})
            aid = self._snowflake()
            url = f"http://127.0.0.1:{self.port}/attachments/{aid}/{f['filename']}"
            out.append(
                {
                    "id": str(aid),
                    "filename": f["filename"],
                    "size": len(f["data"]),
                    "url": url,
                    "proxy_url": url,
                    "content_type": f["content_type"],
                    "description": meta.get("description"),
                }
            )
        return out

    def _store(self, msg: Json) -> None:
        mid = int(msg["id"])
        self._messages[mid] = msg
        self._channel_messages.setdefault(int(msg["channel_id"]), []).append(mid)
        channel = self._channels.get(int(msg["channel_id"]))
        if channel is not None:
            channel["last_message_id"] = msg["id"]

    def _edit(self, msg: Json, payload: Json, files: Sequence[Json]) -> Json:
        edited = copy.deepcopy(msg)
        for key in ("content", "embeds", "components"):
            if key in payload:
                edited[key] = (
                    payload[key] if payload[key] is not None else ([] if key != "content" else "")
                )
        if payload.get("flags") is not None:
            edited["flags"] = int(payload["flags"]) | (msg["flags"] & FLAG_EPHEMERAL)
        if "attachments" in payload or files:
            edited["attachments"] = self._attachments(payload, files, msg["attachments"])
        edited["flags"] &= ~FLAG_LOADING  # an edit resolves a deferred "thinking" message
        edited["edited_timestamp"] = _now_iso()
        _validate_message(edited)
        msg.clear()
        msg.update(edited)
        return msg

    def _thread_channel(
        self,
        tid: int,
        parent: Json,
        name: str,
        kind: int,
        archive: int,
        *,
        owner: Json | None = None,
    ) -> Json:
        now = _now_iso()
        owner_id = str((owner or self.bot_user)["id"])
        thread: Json = {
            "id": str(tid),
            "type": kind,
            "guild_id": str(self.guild_id),
            "parent_id": parent["id"],
            "owner_id": owner_id,
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": archive,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
        }
        if parent["type"] == CHANNEL_FORUM:
            thread["applied_tags"] = []
        if owner_id == str(self.bot_id):  # the bot joined the threads it created
            thread["member"] = {
                "id": str(tid),
                "user_id": str(self.bot_id),
                "join_timestamp": now,
                "flags": 0,
            }
        return thread

    async def _forum_post(
        self,
        forum: Json,
        author: Json,
        title: str,
        message: Json,
        files: Sequence[Json] = (),
        *,
        dispatch_message: bool = True,
        message_first: bool = False,
    ) -> tuple[Json, Json]:
        """A new post in a forum: a public thread whose starter message has the thread's id."""
        tid = self._snowflake()
        thread = self._thread_channel(tid, forum, title, CHANNEL_PUBLIC_THREAD, 4320, owner=author)
        msg = self._new_message(thread, author, message, files=files)
        msg["id"] = str(tid)  # like Discord: the starter message's id is the thread's
        msg["position"] = 0
        thread["message_count"] = thread["total_message_sent"] = 1
        self._channels[tid] = thread
        self._store(msg)
        forum["last_message_id"] = str(tid)
        if message_first and dispatch_message:
            await self._dispatch_message("MESSAGE_CREATE", msg)
        await self._dispatch("THREAD_CREATE", thread | {"newly_created": True})
        if dispatch_message and not message_first:
            await self._dispatch_message("MESSAGE_CREATE", msg)
        return copy.deepcopy(thread), copy.deepcopy(msg)

    # ---- gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        self._gateway_connections.append({"path": request.path, "query": query})
        try:
            conn = _Conn(ws, request, _encoder(query.get("compress")))
        except ValueError:
            await ws.close(code=4000, message=b"Unsupported compression")
            return ws
        self._conns.append(conn)
        try:
            await self._send(
                conn, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            )
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_op(conn, json.loads(msg.data), request.path)
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
        finally:
            self._conns.remove(conn)
            for session in self._sessions.values():
                if session.conn is conn:
                    session.conn = None
        return ws

    async def _send(self, conn: _Conn, frame: Json) -> None:
        text = json.dumps(frame, separators=(",", ":"))
        try:
            if conn.encode is None:
                await conn.ws.send_str(text)
            else:
                await conn.ws.send_bytes(conn.encode(text))
        except (ConnectionResetError, RuntimeError) as exc:  # the client went away mid-send
            log.debug("gateway send failed: %s", exc)

    async def _on_op(self, conn: _Conn, payload: Json, path: str) -> None:
        op, d = payload.get("op"), payload.get("d")
        self._gateway_log.append({"op": op, "d": d, "path": path})
        if op == 1:  # HEARTBEAT
            await self._send(conn, {"op": 11})
        elif op == 2:  # IDENTIFY
            await self._identify(conn, d or {})
        elif op == 6:  # RESUME
            await self._resume(conn, d or {})
        elif op == 8:  # REQUEST_GUILD_MEMBERS
            await self._members_chunk(d or {})

    async def _identify(self, conn: _Conn, d: Json) -> None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        session = _Session(
            id=secrets.token_hex(16), intents=int(d.get("intents") or 0), lock=asyncio.Lock()
        )
        session.conn = conn
        self._sessions[session.id] = session
        self._active = session
        ready = {
            "v": API_VERSION,
            "user": self.bot_user,
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": 1 << 19},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        if d.get("shard") is not None:
            ready["shard"] = d["shard"]
        await self._dispatch_to(session, "READY", ready)
        await self._dispatch_to(session, "GUILD_CREATE", self._guild_payload(session.intents))

    async def _resume(self, conn: _Conn, d: Json) -> None:
        session = self._sessions.get(d.get("session_id") or "")
        if session is None or d.get("token") != self.token:
            await self._send(conn, {"op": 9, "d": False})
            return
        async with session.lock:
            last = int(d.get("seq") or 0)
            for frame in session.buffer:
                if frame["s"] > last:
                    await self._send(conn, frame)
            session.seq += 1
            frame = {"op": 0, "t": "RESUMED", "s": session.seq, "d": {"_trace": ["fake-discord"]}}
            session.buffer.append(frame)
            await self._send(conn, frame)
            session.conn = conn
        self._active = session

    async def _members_chunk(self, d: Json) -> None:
        query = (d.get("query") or "").lower()
        ids = {str(i) for i in d.get("user_ids") or []}
        users = [
            u
            for u in [self.bot_user, *self.users.values()]
            if u["username"].lower().startswith(query)
        ]
        if ids:
            users = [u for u in users if u["id"] in ids]
        chunk = {
            "guild_id": str(self.guild_id),
            "members": [self._member(u) for u in users],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        await self._dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def _dispatch(self, event: str, data: Json) -> None:
        if self._active is not None:
            await self._dispatch_to(self._active, event, data)

    async def _dispatch_to(self, session: _Session, event: str, data: Json) -> None:
        async with session.lock:
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": copy.deepcopy(data)}
            session.buffer.append(frame)
            if session.conn is not None:
                await self._send(session.conn, frame)

    async def _dispatch_message(self, event: str, msg: Json) -> None:
        """MESSAGE_CREATE/UPDATE as the gateway filters it by the session's intents."""
        session = self._active
        if session is None or msg["flags"] & FLAG_EPHEMERAL:
            return
        in_guild = "guild_id" in msg
        if not session.intents & (INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES):
            return
        data = copy.deepcopy(msg)
        if in_guild and int(msg["author"]["id"]) != self.bot_id and "webhook_id" not in msg:
            data["member"] = self._member(msg["author"], with_user=False)
        mentioned = any(int(u["id"]) == self.bot_id for u in msg["mentions"])
        if (
            not session.intents & INTENT_MESSAGE_CONTENT
            and in_guild  # content in the bot's DMs is always delivered
            and int(msg["author"]["id"]) != self.bot_id
            and not mentioned
        ):
            data.update(content="", embeds=[], attachments=[], components=[])
        await self._dispatch_to(session, event, data)

    # ---- REST ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        rec = RecordedRequest(request.method, path, dict(request.query), dict(request.headers))
        self._requests.append(rec)
        try:
            await self._read_body(request, rec)
            response = await self._route(rec)
        except _HttpError as exc:
            response = _json_response(exc.status, exc.body)
        rec.status = response.status
        return response

    async def _read_body(self, request: web.Request, rec: RecordedRequest) -> None:
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "payload_json":
                    rec.json = json.loads(data)
                else:
                    rec.files.append(
                        {
                            "field": part.name,
                            "filename": part.filename,  # type: ignore[union-attr]
                            "content_type": part.headers.get("Content-Type"),
                            "data": bytes(data),
                        }
                    )
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    rec.json = json.loads(raw)
                except ValueError:
                    raise _HttpError(400, {"message": "400: Bad Request", "code": 50109}) from None

    async def _route(self, rec: RecordedRequest) -> web.StreamResponse:
        if (
            not _NO_AUTH_ROUTES.match(rec.path)
            and rec.headers.get("Authorization") != f"Bot {self.token}"
        ):
            raise _HttpError(401, {"message": "401: Unauthorized", "code": 0})
        for rule in self._fail_rules:
            if rule.method == rec.method and rule.pattern.search(rec.path):
                rule.times -= 1
                if rule.times <= 0:
                    self._fail_rules.remove(rule)
                return _failure(rule)
        for method, pattern, handler in self._routes:
            if method == rec.method and (m := pattern.match(rec.path)):
                return await handler(rec, *m.groups())
        self._unknown.append((rec.method, rec.path))
        raise _HttpError(404, {"message": "404: Not Found", "code": 0})

    async def _get_gateway(self, rec: RecordedRequest) -> web.Response:
        return _json_response(200, {"url": self.gateway_url})

    async def _get_gateway_bot(self, rec: RecordedRequest) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return _json_response(
            200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}
        )

    async def _get_me(self, rec: RecordedRequest) -> web.Response:
        return _json_response(
            200, self.bot_user | {"mfa_enabled": False, "verified": True, "locale": "en-US"}
        )

    async def _get_application(self, rec: RecordedRequest) -> web.Response:
        owner = self._make_user("app-owner", self.guild_id + 1)
        return _json_response(
            200,
            {
                "id": str(self.application_id),
                "name": self.bot_user["username"],
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": 1 << 19,
                "bot": self.bot_user,
                "summary": "",
                "rpc_origins": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": 1,
            },
        )

    async def _create_dm(self, rec: RecordedRequest) -> web.Response:
        # What user.create_dm() calls; the same channel every time for the same user.
        user = self._user_by_id(int((rec.json or {}).get("recipient_id") or 0))
        if user is None or user is self.bot_user:
            raise _HttpError(400, {"message": "Invalid Recipient(s)", "code": 50033})
        return _json_response(200, self._open_dm(user))

    async def _get_member(self, rec: RecordedRequest, gid: str, uid: str) -> web.Response:
        user = self._user_by_id(int(uid))
        if int(gid) != self.guild_id or user is None:
            raise _not_found("Member", 10007)
        return _json_response(200, self._member(user))

    async def _get_channel(self, rec: RecordedRequest, cid: str) -> web.Response:
        return _json_response(200, self._channel(int(cid)))

    async def _get_history(self, rec: RecordedRequest, cid: str) -> web.Response:
        self._channel(int(cid))
        limit = int(rec.query.get("limit", 50))
        ids = sorted(i for i in self._channel_messages.get(int(cid), []) if i in self._messages)
        if "before" in rec.query:
            ids = [i for i in ids if i < int(rec.query["before"])]
        if "after" in rec.query:
            ids = [i for i in ids if i > int(rec.query["after"])][:limit]
        ids = ids[-limit:]
        return _json_response(200, [self._messages[i] for i in reversed(ids)])  # newest first

    async def _get_message(self, rec: RecordedRequest, cid: str, mid: str) -> web.Response:
        self._channel(int(cid))
        return _json_response(200, self._get_stored(mid))

    async def _post_message(self, rec: RecordedRequest, cid: str) -> web.Response:
        channel = self._channel(int(cid))
        if channel["type"] == CHANNEL_FORUM:
            raise _HttpError(
                400, {"message": "Cannot send messages in a non-text channel", "code": 50008}
            )
        msg = self._new_message(channel, self.bot_user, rec.json or {}, files=rec.files)
        self._store(msg)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return _json_response(200, msg)

    async def _patch_message(self, rec: RecordedRequest, cid: str, mid: str) -> web.Response:
        self._channel(int(cid))
        msg = self._get_stored(mid)
        if int(msg["author"]["id"]) != self.bot_id:
            raise _HttpError(
                403, {"message": "Cannot edit a message authored by another user", "code": 50005}
            )
        self._edit(msg, rec.json or {}, rec.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return _json_response(200, msg)

    async def _delete_message(self, rec: RecordedRequest, cid: str, mid: str) -> web.Response:
        self._channel(int(cid))
        msg = self._get_stored(mid)
        del self._messages[int(mid)]
        await self._dispatch(
            "MESSAGE_DELETE",
            {"id": msg["id"], "channel_id": msg["channel_id"], **_guild_of(msg)},
        )
        return web.Response(status=204)

    async def _own_reaction(
        self, rec: RecordedRequest, cid: str, mid: str, emoji: str
    ) -> web.Response:
        self._channel(int(cid))
        self._get_stored(mid)
        return web.Response(status=204)

    async def _typing(self, rec: RecordedRequest, cid: str) -> web.Response:
        self._channel(int(cid))
        return web.Response(status=204)

    def _thread_parent(self, cid: str, *, forum_ok: bool = False) -> Json:
        parent = self._channel(int(cid))
        if parent["type"] != CHANNEL_TEXT and not (forum_ok and parent["type"] == CHANNEL_FORUM):
            raise _HttpError(
                400, {"message": "Cannot execute action on this channel type", "code": 50024}
            )
        return parent

    async def _thread_from_message(self, rec: RecordedRequest, cid: str, mid: str) -> web.Response:
        parent = self._thread_parent(cid)
        msg = self._get_stored(mid)
        if int(mid) in self._channels:
            raise _HttpError(
                400,
                {"message": "A thread has already been created for this message", "code": 160004},
            )
        body = rec.json or {}
        thread = self._thread_channel(
            int(mid),
            parent,
            body.get("name", "thread"),
            CHANNEL_PUBLIC_THREAD,
            body.get("auto_archive_duration", 1440),
        )
        self._channels[int(mid)] = thread
        msg["thread"] = thread
        await self._dispatch("THREAD_CREATE", thread | {"newly_created": True})
        return _json_response(201, thread)

    async def _thread_without_message(self, rec: RecordedRequest, cid: str) -> web.Response:
        parent = self._thread_parent(cid, forum_ok=True)
        body = rec.json or {}
        if parent["type"] == CHANNEL_FORUM:  # a forum post: a thread + its starter message
            if not isinstance(body.get("message"), dict):
                raise _HttpError(
                    400,
                    {
                        "message": "Invalid Form Body",
                        "code": 50035,
                        "errors": {
                            "message": {
                                "_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "Required"}]
                            }
                        },
                    },
                )
            thread, msg = await self._forum_post(
                parent, self.bot_user, body.get("name", "post"), body["message"], rec.files
            )
            return _json_response(201, thread | {"message": msg})
        tid = self._snowflake()
        thread = self._thread_channel(
            tid,
            parent,
            body.get("name", "thread"),
            body.get("type", 12),
            body.get("auto_archive_duration", 1440),
        )
        self._channels[tid] = thread
        await self._dispatch("THREAD_CREATE", thread | {"newly_created": True})
        return _json_response(201, thread)

    def _interaction(self, token: str) -> _Interaction:
        found = next((i for i in self._interactions.values() if i.token == token), None)
        if found is None:
            raise _not_found("Webhook", 10015)
        return found

    async def _interaction_callback(
        self, rec: RecordedRequest, iid: str, token: str
    ) -> web.Response:
        it = self._interactions.get(int(iid))
        if it is None or it.token != token:
            raise _not_found("interaction", 10062)
        if it.response_type is not None:
            raise _HttpError(
                400, {"message": "Interaction has already been acknowledged.", "code": 40060}
            )
        body = rec.json or {}
        kind, data = int(body.get("type", 0)), body.get("data") or {}
        channel = self._channel(it.channel_id)
        msg: Json | None = None
        meta = {
            "interaction_metadata": {
                "id": str(it.id),
                "type": it.type,
                "user": it.user,
                "authorizing_integration_owners": self._owners(channel),
            }
        }
        msg_type = MSG_CHAT_INPUT if it.type == INTERACTION_COMMAND else MSG_DEFAULT
        if kind == 4:  # CHANNEL_MESSAGE_WITH_SOURCE
            msg = self._new_message(
                channel,
                self.bot_user,
                data,
                files=rec.files,
                msg_type=msg_type,
                webhook_id=self.application_id,
                extra=meta,
            )
        elif kind == 5:  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: a "thinking" placeholder
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            msg = self._placeholder(channel, flags, msg_type, meta)
        elif kind in (6, 7):  # DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE (components only)
            if it.message_id is None:
                raise _HttpError(
                    400, {"message": "Interaction has no message to update", "code": 50035}
                )
            target = self._get_stored(it.message_id)
            if kind == 7:
                self._edit(target, data, rec.files)
                await self._dispatch_message("MESSAGE_UPDATE", target)
            it.original_id = it.message_id
            msg = target
        elif kind not in (8, 9):  # autocomplete result, modal: nothing to store
            raise _HttpError(400, {"message": "Invalid interaction response type", "code": 50035})
        if msg is not None and kind in (4, 5):
            self._store(msg)
            it.original_id = int(msg["id"])
            await self._dispatch_message("MESSAGE_CREATE", msg)
        it.response_type = kind
        if rec.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        callback: Json = {
            "interaction": {
                "id": str(it.id),
                "type": it.type,
                "response_message_id": msg["id"] if msg else None,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(msg and msg["flags"] & FLAG_EPHEMERAL),
            },
            "resource": {"type": kind} | ({"message": msg} if msg else {}),
        }
        return _json_response(200, callback)

    def _placeholder(self, channel: Json, flags: int, msg_type: int, meta: Json) -> Json:
        """The message a deferred response shows (content arrives with PATCH @original)."""
        mid = self._snowflake()
        return {
            "id": str(mid),
            "channel_id": channel["id"],
            **_guild_of(channel),
            "author": self.bot_user,
            "content": "",
            "embeds": [],
            "components": [],
            "attachments": [],
            "flags": flags,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "type": msg_type,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "webhook_id": str(self.application_id),
            "application_id": str(self.application_id),
        } | meta

    async def _webhook_execute(self, rec: RecordedRequest, app_id: str, token: str) -> web.Response:
        it = self._interaction(token)
        if int(app_id) != self.application_id or it.response_type is None:
            raise _not_found("Webhook", 10015)
        msg = self._new_message(
            self._channel(it.channel_id),
            self.bot_user,
            rec.json or {},
            files=rec.files,
            webhook_id=self.application_id,
        )
        self._store(msg)
        await self._dispatch_message("MESSAGE_CREATE", msg)
        if rec.query.get("wait") in ("1", "true", "True"):
            return _json_response(200, msg)
        return web.Response(status=204)

    async def _webhook_message(
        self, rec: RecordedRequest, app_id: str, token: str, which: str
    ) -> web.Response:
        it = self._interaction(token)
        mid = it.original_id if which == "@original" else int(which)
        if int(app_id) != self.application_id or mid is None or mid not in self._messages:
            raise _not_found("Message", 10008)
        msg = self._messages[mid]
        if rec.method == "GET":
            return _json_response(200, msg)
        if rec.method == "DELETE":
            del self._messages[mid]
            if not msg["flags"] & FLAG_EPHEMERAL:
                await self._dispatch(
                    "MESSAGE_DELETE",
                    {"id": msg["id"], "channel_id": msg["channel_id"], **_guild_of(msg)},
                )
            return web.Response(status=204)
        self._edit(msg, rec.json or {}, rec.files)
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return _json_response(200, msg)

    def _check_app(self, app_id: str) -> None:
        if int(app_id) != self.application_id:
            raise _HttpError(403, {"message": "Missing Access", "code": 50001})

    async def _get_commands(
        self, rec: RecordedRequest, app_id: str, gid: str | None = None
    ) -> web.Response:
        self._check_app(app_id)
        return _json_response(200, self._commands.get(int(gid) if gid else None, []))

    async def _put_commands(
        self, rec: RecordedRequest, app_id: str, gid: str | None = None
    ) -> web.Response:
        self._check_app(app_id)
        guild = int(gid) if gid else None
        if guild is not None and guild != self.guild_id:
            raise _HttpError(403, {"message": "Missing Access", "code": 50001})
        old = {(c["name"], c.get("type", 1)): c["id"] for c in self._commands.get(guild, [])}
        synced = []
        for cmd in rec.json or []:
            kind = cmd.get("type", 1)
            echoed = {
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **cmd,
                "id": old.get((cmd["name"], kind)) or str(self._snowflake()),
                "application_id": str(self.application_id),
                "type": kind,
                "version": str(self._snowflake()),
            }
            if guild is not None:
                echoed["guild_id"] = str(guild)
            synced.append(echoed)
        self._commands[guild] = synced
        return _json_response(200, synced)


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
