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

from tests.fakes.discord_fake.gateway import GatewayMixin
from tests.fakes.discord_fake.protocol import (
    ADMINISTRATOR,
    API_VERSION,
    BOT_PERMISSIONS,
    CHANNEL_DM,
    CHANNEL_FORUM,
    CHANNEL_PUBLIC_THREAD,
    CHANNEL_TEXT,
    COMMAND_CHAT_INPUT,
    COMMAND_MESSAGE,
    COMMAND_USER,
    CONTEXT_BOT_DM,
    CONTEXT_GUILD,
    DISCORD_EPOCH_MS,
    DM_PERMISSIONS,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    GUILD_CHANNEL_TYPES,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    INTERACTION_COMMAND,
    INTERACTION_COMPONENT,
    MEMBER_PERMISSIONS,
    MSG_CHAT_INPUT,
    MSG_DEFAULT,
    MSG_REPLY,
    Json,
    RecordedRequest,
    snowflake,
    snowflake_time_ms,
)
from tests.fakes.discord_fake.rest import RestMixin
from tests.fakes.discord_fake.state import FakeDiscordState


class FakeDiscord(GatewayMixin, RestMixin, FakeDiscordState):
    """One fake Discord: a guild, its channels and members, REST and gateway (see module doc).

    By concern, in tests/fakes/discord_fake/: `state.py` (the guild and its messages,
    lifecycle, inspection, injection, payload builders), `rest.py` (REST routes),
    `gateway.py` (the websocket), `validation.py` (message checks), `protocol.py` (constants,
    snowflakes, wire helpers).
    """


__all__ = [
    "FakeDiscord",
    "ADMINISTRATOR",
    "API_VERSION",
    "BOT_PERMISSIONS",
    "CHANNEL_DM",
    "CHANNEL_FORUM",
    "CHANNEL_PUBLIC_THREAD",
    "CHANNEL_TEXT",
    "COMMAND_CHAT_INPUT",
    "COMMAND_MESSAGE",
    "COMMAND_USER",
    "CONTEXT_BOT_DM",
    "CONTEXT_GUILD",
    "DISCORD_EPOCH_MS",
    "DM_PERMISSIONS",
    "FLAG_EPHEMERAL",
    "FLAG_LOADING",
    "GUILD_CHANNEL_TYPES",
    "INTENT_DIRECT_MESSAGES",
    "INTENT_GUILD_MEMBERS",
    "INTENT_GUILD_MESSAGES",
    "INTENT_MESSAGE_CONTENT",
    "INTERACTION_COMMAND",
    "INTERACTION_COMPONENT",
    "Json",
    "MEMBER_PERMISSIONS",
    "MSG_CHAT_INPUT",
    "MSG_DEFAULT",
    "MSG_REPLY",
    "RecordedRequest",
    "snowflake",
    "snowflake_time_ms",
]
