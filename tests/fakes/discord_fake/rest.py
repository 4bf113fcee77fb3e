"""The fake Discord's REST routes: users, channels, messages, threads, interactions, webhooks, commands."""

from __future__ import annotations

import json

from aiohttp import web

from tests.fakes.discord_fake.protocol import (
    _NO_AUTH_ROUTES,
    CHANNEL_FORUM,
    CHANNEL_PUBLIC_THREAD,
    CHANNEL_TEXT,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    INTERACTION_COMMAND,
    MSG_CHAT_INPUT,
    MSG_DEFAULT,
    Json,
    RecordedRequest,
    _failure,
    _guild_of,
    _HttpError,
    _Interaction,
    _json_response,
    _not_found,
)


class RestMixin:
    """REST handlers of `FakeDiscord` (state in `FakeDiscordState`)."""

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
        return (
            self._message_base(channel, self.bot_user, msg_type=msg_type)
            | {
                "flags": flags,
                "webhook_id": str(self.application_id),
                "application_id": str(self.application_id),
            }
            | meta
        )

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
