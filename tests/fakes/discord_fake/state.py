"""The fake Discord's state and its test-facing API (see tests/fakes/discord_server.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import itertools
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

from aiohttp import web

from tests.fakes.discord_fake.protocol import (
    _MENTION,
    ADMINISTRATOR,
    API_VERSION,
    BOT_PERMISSIONS,
    CHANNEL_DM,
    CHANNEL_FORUM,
    CHANNEL_PUBLIC_THREAD,
    CHANNEL_TEXT,
    COMMAND_MESSAGE,
    CONTEXT_BOT_DM,
    CONTEXT_GUILD,
    DM_PERMISSIONS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    GUILD_CHANNEL_TYPES,
    INTENT_GUILD_MEMBERS,
    INTERACTION_COMMAND,
    INTERACTION_COMPONENT,
    MEMBER_PERMISSIONS,
    MSG_DEFAULT,
    MSG_REPLY,
    Json,
    RecordedRequest,
    T,
    _Conn,
    _FailRule,
    _guild_of,
    _HttpError,
    _Interaction,
    _not_found,
    _now_iso,
    _Session,
    _usable_in_dms,
    snowflake,
)
from tests.fakes.discord_fake.validation import (
    _validate_message,
)

log = logging.getLogger(__name__)


class FakeDiscordState:
    """The guild, its channels, members and messages; lifecycle, inspection, injection and
    payload builders of the fake Discord (REST and gateway are mixins beside it)."""

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

    def start(self) -> Self:
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

    def __enter__(self) -> Self:
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

    def _message_base(self, channel: Json, author: Json, *, msg_type: int) -> Json:
        """A new message object with its id and no content (not validated: a deferred
        response's placeholder is empty, which no send may be)."""
        return {
            "id": str(self._snowflake()),
            "channel_id": channel["id"],
            **_guild_of(channel),
            "author": author,
            "content": "",
            "embeds": [],
            "components": [],
            "attachments": [],
            "flags": 0,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "type": msg_type,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
        }

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
        msg = self._message_base(channel, author, msg_type=msg_type)
        msg.update(
            content=payload.get("content") or "",
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            attachments=self._attachments(payload, files, []),
            flags=int(payload.get("flags") or 0),
            tts=bool(payload.get("tts", False)),
        )
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
