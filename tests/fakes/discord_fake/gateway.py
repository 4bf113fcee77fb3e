"""The fake Discord's gateway websocket: HELLO, IDENTIFY, READY, RESUME, heartbeats, dispatch."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import secrets

from aiohttp import WSMsgType, web

from tests.fakes.discord_fake.protocol import (
    API_VERSION,
    FLAG_EPHEMERAL,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    Json,
    _Conn,
    _encoder,
    _Session,
)

log = logging.getLogger(__name__)


class GatewayMixin:
    """Gateway handlers of `FakeDiscord` (state in `FakeDiscordState`)."""

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
