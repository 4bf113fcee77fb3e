"""The fake Discord works with the real discord.py client: a bare commands.Bot logs in and talks to it."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zlib

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_server import (
    ADMINISTRATOR,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FakeDiscord,
    snowflake,
    snowflake_time_ms,
)
from tests.fixtures.discord import FAST_GUILD_READY, running_client

NO_MENTIONS = discord.AllowedMentions.none().to_dict()  # {"parse": []}


def make_bot(*, message_content: bool = True, members: bool = False) -> commands.Bot:
    intents = discord.Intents.default()
    intents.message_content = message_content
    intents.members = members
    return commands.Bot(
        command_prefix="!",
        intents=intents,
        guild_ready_timeout=FAST_GUILD_READY,
        allowed_mentions=discord.AllowedMentions.none(),
    )


def collect(bot: commands.Bot, event: str, transform=lambda *args: args) -> list:
    """The events the bot dispatches, as transform(*args), in order."""
    seen: list = []

    async def listener(*args) -> None:
        seen.append(transform(*args))

    bot.add_listener(listener, event)
    return seen


def bot_messages(fake: FakeDiscord, channel_id: int) -> list[dict]:
    return fake.messages_in(channel_id, author_id=fake.bot_id)


def echo_bot(**kwargs) -> commands.Bot:
    bot = make_bot(**kwargs)

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author != bot.user:
            await message.reply(f"echo: {message.content}")

    return bot


async def test_login_ready_and_guild_available(fake_discord: FakeDiscord) -> None:
    bot = make_bot(members=True)
    available: list[int] = []

    @bot.event
    async def on_guild_available(guild: discord.Guild) -> None:
        available.append(guild.id)

    async with running_client(bot, fake_discord.token):
        assert bot.user is not None and bot.user.id == fake_discord.bot_id
        assert bot.application_id == fake_discord.application_id
        guild = bot.get_guild(fake_discord.guild_id)
        assert guild is not None and not guild.unavailable
        assert available == [guild.id]
        assert {c.name for c in guild.text_channels} == {"general", "random"}
        assert guild.me.get_role(fake_discord.bot_role_id) is not None
        alice = guild.get_member(int(fake_discord.users["alice"]["id"]))
        assert alice is not None and alice.guild_permissions.administrator
        general = guild.get_channel(fake_discord.channel_ids["general"])
        assert general.permissions_for(guild.me).send_messages
        bob = await guild.fetch_member(int(fake_discord.users["bob"]["id"]))
        assert bob.name == "bob" and not bob.guild_permissions.administrator

    login = [
        r for r in fake_discord.requests if r.path in ("/users/@me", "/oauth2/applications/@me")
    ]
    assert [r.status for r in login] == [200, 200]
    assert all(r.headers["Authorization"] == f"Bot {fake_discord.token}" for r in login)
    (conn,) = fake_discord.gateway_connections
    assert conn["query"]["v"] == "10" and conn["query"]["encoding"] == "json"
    assert conn["query"]["compress"] == discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE
    identify = [e for e in fake_discord.gateway_log if e["op"] == 2]
    assert identify[0]["d"]["intents"] == bot.intents.value


@pytest.mark.parametrize("compress", [None, "zlib-stream", "zstd-stream"])
async def test_gateway_frames_follow_the_requested_compression(
    fake_discord: FakeDiscord, compress: str | None
) -> None:
    if compress == "zstd-stream":
        zstandard = pytest.importorskip("zstandard")
        decoder = zstandard.ZstdDecompressor().decompressobj()
        decode = lambda data: decoder.decompress(data).decode()  # noqa: E731
    elif compress == "zlib-stream":
        inflater = zlib.decompressobj()

        def decode(data: bytes) -> str:
            assert data.endswith(b"\x00\x00\xff\xff")  # each message ends with a Z_SYNC_FLUSH
            return inflater.decompress(data).decode()

    query = {"v": "10", "encoding": "json"} | ({"compress": compress} if compress else {})
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(fake_discord.gateway_url, params=query) as ws,
    ):

        async def receive() -> dict:
            msg = await ws.receive(timeout=5)
            if compress is None:
                assert msg.type is aiohttp.WSMsgType.TEXT
                return json.loads(msg.data)
            assert msg.type is aiohttp.WSMsgType.BINARY
            return json.loads(decode(msg.data))

        hello = await receive()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json(
            {"op": 2, "d": {"token": fake_discord.token, "intents": 513, "properties": {}}}
        )
        ready, guild = await receive(), await receive()
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["resume_gateway_url"].startswith("ws://127.0.0.1:")
        assert (guild["t"], guild["s"], guild["d"]["id"]) == (
            "GUILD_CREATE",
            2,
            str(fake_discord.guild_id),
        )
        await ws.send_json({"op": 1, "d": 2})
        assert (await receive())["op"] == 11


async def test_on_message_reply_is_captured_with_allowed_mentions(
    fake_discord: FakeDiscord,
) -> None:
    bot = echo_bot()
    seen = collect(bot, "on_message", lambda m: (m.author.id, m.content))
    general = fake_discord.channel_ids["general"]
    bob = fake_discord.users["bob"]

    async with running_client(bot, fake_discord.token):
        sent = fake_discord.send_message(general, "alice", f"hello <@{bob['id']}>")
        assert sent["mentions"] == [bob]  # parsed from the content, like Discord
        (reply,) = await fake_discord.wait_for(lambda: bot_messages(fake_discord, general))
        # the bot also receives its own message over the gateway, like on Discord
        await fake_discord.wait_for(lambda: (fake_discord.bot_id, reply["content"]) in seen)

    assert reply["content"] == f"echo: hello <@{bob['id']}>"
    assert reply["type"] == 19 and reply["message_reference"]["message_id"] == sent["id"]
    assert reply["referenced_message"]["id"] == sent["id"]
    (request,) = fake_discord.message_requests()
    assert request.path == f"/channels/{general}/messages" and request.status == 200
    assert request.json["allowed_mentions"] == NO_MENTIONS


async def test_message_content_needs_the_intent_unless_the_bot_is_mentioned(
    fake_discord: FakeDiscord,
) -> None:
    bot = make_bot(message_content=False)
    contents = collect(bot, "on_message", lambda m: m.content)
    general = fake_discord.channel_ids["general"]

    async with running_client(bot, fake_discord.token):
        fake_discord.send_message(general, "alice", "not for you")
        fake_discord.send_message(general, "alice", f"<@{fake_discord.bot_id}> for you")
        await fake_discord.wait_for(lambda: len(contents) == 2)

    assert contents == ["", f"<@{fake_discord.bot_id}> for you"]


async def test_slash_command_is_synced_deferred_edited_and_followed_up(
    fake_discord: FakeDiscord,
) -> None:
    bot = make_bot()

    @bot.tree.command(name="ask", description="Ask the corpus")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"answer to {question}")
        await interaction.followup.send("sources", ephemeral=True)

    general = fake_discord.channel_ids["general"]
    async with running_client(bot, fake_discord.token):
        (synced,) = await bot.tree.sync()
        assert synced.name == "ask" and synced.id == int(fake_discord.commands()[0]["id"])
        interaction = fake_discord.send_slash(
            "ask", {"question": "why?"}, user="bob", channel_id=general
        )
        assert interaction["data"]["id"] == str(synced.id)
        original, followup = await fake_discord.wait_for(
            lambda: (msgs := bot_messages(fake_discord, general)) and len(msgs) == 2 and msgs
        )

    assert original["content"] == "answer to why?" and not original["flags"] & FLAG_LOADING
    assert original["interaction_metadata"]["user"]["id"] == fake_discord.users["bob"]["id"]
    assert followup["content"] == "sources" and followup["flags"] & FLAG_EPHEMERAL
    kinds = [
        (
            r.method,
            r.path.split("/")[1],
            r.json.get("type") if r.path.endswith("callback") else None,
        )
        for r in fake_discord.requests
        if r.path.startswith(("/interactions", "/webhooks"))
    ]
    assert kinds == [
        ("POST", "interactions", 5),
        ("PATCH", "webhooks", None),
        ("POST", "webhooks", None),
    ]
    assert all(r.json["allowed_mentions"] == NO_MENTIONS for r in fake_discord.message_requests())


async def test_member_permissions_reach_app_command_checks(fake_discord: FakeDiscord) -> None:
    bot = make_bot()

    @bot.tree.command(name="reindex", description="Admins only")
    @app_commands.checks.has_permissions(administrator=True)
    async def reindex(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("reindexing")

    @bot.tree.error
    async def on_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await interaction.response.send_message(f"denied: {type(error).__name__}", ephemeral=True)

    general = fake_discord.channel_ids["general"]
    async with running_client(bot, fake_discord.token):
        await bot.tree.sync()
        for user, permissions in [("bob", None), ("alice", None), ("bob", ADMINISTRATOR)]:
            fake_discord.send_slash("reindex", user=user, permissions=permissions)
        replies = await fake_discord.wait_for(
            lambda: len(msgs := bot_messages(fake_discord, general)) == 3 and msgs
        )

    assert [m["content"] for m in replies] == [
        "denied: MissingPermissions",
        "reindexing",
        "reindexing",
    ]
    assert [bool(m["flags"] & FLAG_EPHEMERAL) for m in replies] == [True, False, False]


async def test_button_click_reaches_the_view_callback(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    clicks: list[int] = []
    reactions = collect(
        bot, "on_raw_reaction_add", lambda r: (r.message_id, str(r.emoji), r.user_id)
    )

    class Feedback(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Helpful", custom_id="fb:up")
        async def up(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            clicks.append(interaction.user.id)
            await interaction.response.send_message("thanks", ephemeral=True)

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author != bot.user:
            await message.channel.send("an answer", view=Feedback())

    general = fake_discord.channel_ids["general"]
    async with running_client(bot, fake_discord.token):
        fake_discord.send_message(general, "alice", "question")
        (answer,) = await fake_discord.wait_for(lambda: bot_messages(fake_discord, general))
        assert answer["components"][0]["components"][0]["custom_id"] == "fb:up"
        fake_discord.click_button(answer, "fb:up", user="bob")
        thanks = await fake_discord.wait_for(lambda: bot_messages(fake_discord, general)[1:])
        fake_discord.react(answer, "\N{THUMBS UP SIGN}", user="alice")
        await fake_discord.wait_for(lambda: reactions)

    assert clicks == [int(fake_discord.users["bob"]["id"])]
    alice_id = int(fake_discord.users["alice"]["id"])
    assert reactions == [(int(answer["id"]), "\N{THUMBS UP SIGN}", alice_id)]
    assert thanks[0]["content"] == "thanks" and thanks[0]["flags"] & FLAG_EPHEMERAL


async def test_bad_token_is_a_login_failure(fake_discord: FakeDiscord) -> None:
    with pytest.raises(discord.LoginFailure):
        async with running_client(make_bot(), "not-the-token"):
            pass
    assert [(r.path, r.status) for r in fake_discord.requests] == [("/users/@me", 401)]


@pytest.mark.parametrize("global_", [False, True])
async def test_rate_limited_send_is_retried_and_delivered_once(
    fake_discord: FakeDiscord, global_: bool
) -> None:
    bot = echo_bot()
    general = fake_discord.channel_ids["general"]
    fake_discord.fail_next(
        "POST", rf"^/channels/{general}/messages$", retry_after=0.2, global_=global_
    )

    async with running_client(bot, fake_discord.token):
        fake_discord.send_message(general, "alice", "hi")
        (reply,) = await fake_discord.wait_for(lambda: bot_messages(fake_discord, general))
        sends = fake_discord.message_requests()

    assert reply["content"] == "echo: hi"
    assert [r.status for r in sends] == [429, 200]
    assert sends[0].json == sends[1].json and sends[1].json["allowed_mentions"] == NO_MENTIONS
    assert len(bot_messages(fake_discord, general)) == 1


@pytest.mark.parametrize("abrupt", [False, True])
async def test_dropped_gateway_resumes_and_replays_missed_events(
    fake_discord: FakeDiscord, abrupt: bool
) -> None:
    bot = make_bot()
    contents = collect(bot, "on_message", lambda m: m.content)
    resumed = collect(bot, "on_resumed")
    general = fake_discord.channel_ids["general"]

    async with running_client(bot, fake_discord.token):
        fake_discord.send_message(general, "alice", "before")
        await fake_discord.wait_for(lambda: contents == ["before"])
        fake_discord.drop_gateway(abrupt=abrupt)
        fake_discord.send_message(general, "alice", "while down")  # buffered, replayed on RESUME
        await fake_discord.wait_for(lambda: resumed, timeout=10)
        fake_discord.send_message(general, "bob", "after")
        await fake_discord.wait_for(lambda: len(contents) == 3)

    assert contents == ["before", "while down", "after"]
    ops = [(e["op"], e["path"]) for e in fake_discord.gateway_log if e["op"] in (2, 6)]
    assert ops == [(2, "/"), (6, "/resume")]  # resumed on resume_gateway_url, never re-identified
    (resume,) = [e["d"] for e in fake_discord.gateway_log if e["op"] == 6]
    assert resume["session_id"] == fake_discord.events("READY")[0]["d"]["session_id"]
    # "while down" was dispatched while disconnected, so it can only have arrived by replay
    order = [
        (f["t"], f["d"].get("content"))
        for f in fake_discord.events()
        if f["t"] in ("MESSAGE_CREATE", "RESUMED")
    ]
    assert order == [
        ("MESSAGE_CREATE", "before"),
        ("MESSAGE_CREATE", "while down"),
        ("RESUMED", None),
        ("MESSAGE_CREATE", "after"),
    ]
    assert resume["seq"] < fake_discord.events("MESSAGE_CREATE")[1]["s"]


async def test_thread_from_message_and_file_upload(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    threads = collect(bot, "on_thread_create", lambda t: t.id)

    @bot.event
    async def on_message(message: discord.Message) -> None:
        if message.author != bot.user and not isinstance(message.channel, discord.Thread):
            async with message.channel.typing():
                thread = await message.create_thread(name="Answer")
            await thread.send(
                "see file", file=discord.File(io.BytesIO(b"quoted text"), "sources.txt")
            )

    general = fake_discord.channel_ids["general"]
    async with running_client(bot, fake_discord.token):
        question = fake_discord.send_message(general, "alice", "question")
        thread_id = int(question["id"])  # Discord gives a message's thread the message's id
        (answer,) = await fake_discord.wait_for(lambda: bot_messages(fake_discord, thread_id))
        await fake_discord.wait_for(lambda: threads == [thread_id])
        assert isinstance(bot.get_channel(thread_id), discord.Thread)

    assert answer["content"] == "see file" and answer["attachments"][0]["filename"] == "sources.txt"
    (upload,) = [r for r in fake_discord.message_requests() if r.files]
    assert upload.json["content"] == "see file" and upload.files[0]["data"] == b"quoted text"
    assert fake_discord.message(question["id"])["thread"]["parent_id"] == str(general)
    assert any(r.path == f"/channels/{general}/typing" for r in fake_discord.requests)


async def test_refuses_what_discord_refuses(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    async with running_client(bot, fake_discord.token):
        channel = bot.get_channel(fake_discord.channel_ids["general"])
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        with pytest.raises(discord.HTTPException) as big_embed:
            await channel.send(embed=discord.Embed(description="y" * 4097))
        with pytest.raises(discord.NotFound):
            await bot.http.request(discord.http.Route("GET", "/no/such/route"))

    assert (too_long.value.status, too_long.value.code) == (400, 50035)
    assert "content" in too_long.value.text and "2000" in too_long.value.text
    assert big_embed.value.code == 50035 and "embeds.0.description" in big_embed.value.text
    assert fake_discord.unknown_routes == [("GET", "/no/such/route")]
    assert fake_discord.messages_in(fake_discord.channel_ids["general"]) == []


def test_sync_tests_can_use_the_rest_api(fake_discord: FakeDiscord) -> None:
    def get(path: str, token: str) -> tuple[int, str, dict]:
        request = urllib.request.Request(
            fake_discord.api_base + path, headers={"Authorization": f"Bot {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.headers["Content-Type"], json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], json.load(error)

    assert get("/users/@me", "wrong") == (
        401,
        "application/json",
        {"message": "401: Unauthorized", "code": 0},
    )
    status, content_type, me = get("/users/@me", fake_discord.token)
    assert (status, content_type, me["id"]) == (200, "application/json", str(fake_discord.bot_id))
    general = fake_discord.channel_ids["general"]
    fake_discord.send_message(
        general, "bob", "nobody is connected"
    )  # stored, nothing to dispatch to
    (stored,) = fake_discord.wait_for_sync(lambda: fake_discord.messages_in(general))
    assert stored["author"]["username"] == "bob" and fake_discord.events() == []


def test_snowflakes_encode_their_time_and_are_unique(new_snowflake) -> None:
    assert snowflake_time_ms(snowflake(1_700_000_000_000, increment=7)) == 1_700_000_000_000
    ids = [new_snowflake() for _ in range(100)]
    assert len(set(ids)) == 100


async def test_dm_reaches_on_message_without_a_guild_and_the_reply_lands_in_the_dm(
    fake_discord: FakeDiscord,
) -> None:
    fake = fake_discord
    bot = echo_bot(message_content=False)  # DM content is delivered without the intent
    seen = collect(bot, "on_message", lambda m: (m.author.id, m.guild, type(m.channel), m.content))
    alice = fake.users["alice"]

    async with running_client(bot, fake.token):
        sent = fake.send_dm("alice", "hello bot")
        dm_id = fake.dm_channel_id("alice")
        assert int(sent["channel_id"]) == dm_id and "guild_id" not in sent
        (reply,) = await fake.wait_for(lambda: bot_messages(fake, dm_id))
        await fake.wait_for(lambda: len(seen) == 2)  # the bot also sees its own DM
        with pytest.raises(discord.HTTPException) as no_thread:  # no threads in a DM
            # (discord.py refuses client-side for a guild-less message; ask the API directly)
            await bot.http.start_thread_with_message(
                dm_id, sent["id"], name="nope", auto_archive_duration=1440
            )

    assert seen[0] == (int(alice["id"]), None, discord.DMChannel, "hello bot")
    assert seen[1][:3] == (fake.bot_id, None, discord.DMChannel)
    assert reply["content"] == "echo: hello bot" and "guild_id" not in reply
    assert reply["message_reference"] == {
        "type": 0,
        "message_id": sent["id"],
        "channel_id": str(dm_id),
    }
    assert [m["id"] for m in fake.messages_in(dm_id)] == [sent["id"], reply["id"]]
    assert (no_thread.value.status, no_thread.value.code) == (400, 50024)
    created = [f["d"] for f in fake.events("MESSAGE_CREATE")]
    assert all("guild_id" not in d and "member" not in d for d in created)
    assert not fake.events("CHANNEL_CREATE")  # Discord sends bots none for DMs
    (request,) = fake.message_requests()
    assert request.path == f"/channels/{dm_id}/messages"
    assert request.json["allowed_mentions"] == NO_MENTIONS


async def test_dms_need_the_direct_messages_intent(fake_discord: FakeDiscord) -> None:
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.message_content = True
    bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=FAST_GUILD_READY)
    contents = collect(bot, "on_message", lambda m: m.content)

    async with running_client(bot, fake_discord.token):
        fake_discord.send_dm("alice", "unseen")
        fake_discord.send_message(fake_discord.channel_ids["general"], "alice", "seen")
        await fake_discord.wait_for(lambda: contents)

    assert contents == ["seen"]
    assert [f["d"]["content"] for f in fake_discord.events("MESSAGE_CREATE")] == ["seen"]


async def test_create_dm_opens_one_channel_per_user(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    bot = make_bot()
    bob_id = int(fake.users["bob"]["id"])

    async with running_client(bot, fake.token):
        dm = await bot.create_dm(discord.Object(bob_id))
        assert isinstance(dm, discord.DMChannel) and dm.recipient.id == bob_id
        assert await bot.create_dm(discord.Object(bob_id)) is dm  # cached by discord.py
        await dm.send("hi bob")
        with pytest.raises(discord.HTTPException) as invalid:
            await bot.create_dm(discord.Object(snowflake()))

    assert dm.id == fake.dm_channel_id("bob") != fake.dm_channel_id("alice")
    assert [m["content"] for m in bot_messages(fake, dm.id)] == ["hi bob"]
    opens = [r for r in fake.requests if r.path == "/users/@me/channels"]
    assert [(r.json["recipient_id"], r.status) for r in opens][0] == (bob_id, 200)
    assert (invalid.value.status, invalid.value.code) == (400, 50033)
    # the DM is not part of the guild
    (guild,) = [f["d"] for f in fake.events("GUILD_CREATE")]
    assert str(dm.id) not in {c["id"] for c in guild["channels"] + guild["threads"]}


async def test_slash_command_in_a_dm_has_a_user_and_no_guild(fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    bot = make_bot()
    seen: list = []

    @bot.tree.command(name="ask", description="Ask the corpus")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        seen.append((interaction.guild_id, type(interaction.user), type(interaction.channel)))
        await interaction.response.send_message(f"answer to {question}", ephemeral=True)

    @bot.tree.command(name="stats", description="Guild only")
    @app_commands.guild_only()
    async def stats(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("stats")

    async with running_client(bot, fake.token):
        await bot.tree.sync()
        payload = fake.send_slash("ask", {"question": "why?"}, user="bob", dm=True)
        dm_id = fake.dm_channel_id("bob")
        (reply,) = await fake.wait_for(lambda: bot_messages(fake, dm_id))
        with pytest.raises(ValueError, match="no global DM command"):
            fake.send_slash("stats", user="bob", dm=True)

    assert "member" not in payload and "guild_id" not in payload
    assert payload["user"] == fake.users["bob"] and payload["context"] == 1
    assert payload["channel"] == {
        "id": str(dm_id),
        "type": 1,
        "last_message_id": None,
        "flags": 0,
        "recipients": [fake.users["bob"]],
    }
    assert seen == [(None, discord.User, discord.DMChannel)]
    assert reply["content"] == "answer to why?" and reply["flags"] & FLAG_EPHEMERAL
    assert "guild_id" not in reply


@pytest.mark.parametrize("fake_discord_options", [{"forums": ("help",)}])
async def test_forum_posts_reach_discord_py_as_threads_with_starters(
    fake_discord: FakeDiscord,
) -> None:
    bot = make_bot()
    created = collect(bot, "on_thread_create", lambda t: t)
    starters = collect(bot, "on_message", lambda m: m.id)
    forum_id = fake_discord.channel_ids["help"]
    async with running_client(bot, fake_discord.token):
        forum = bot.get_channel(forum_id)
        assert isinstance(forum, discord.ForumChannel)
        thread, starter = fake_discord.create_forum_post(forum_id, "alice", "Title?", "Body")
        await fake_discord.wait_for(lambda: created and starters)
        post = created[0]
        assert isinstance(post.parent, discord.ForumChannel) and post.name == "Title?"
        assert post.owner_id == int(fake_discord.users["alice"]["id"])
        assert starters == [post.id] == [int(starter["id"])]
        assert post.starter_message is not None and post.starter_message.content == "Body"

        # A starter that never came over the gateway can be fetched (id == thread id).
        quiet, _ = fake_discord.create_forum_post(
            forum_id, "bob", "Quiet", "fetch me", dispatch_message=False
        )
        await fake_discord.wait_for(lambda: len(created) == 2)
        assert created[1].starter_message is None
        fetched = await created[1].fetch_message(created[1].id)
        assert fetched.content == "fetch me" and fetched.channel.id == int(quiet["id"])

        # The bot opens a post itself (a forum thread needs its first message) ...
        made = await forum.create_thread(name="From the bot", content="hello")
        assert made.message.id == made.thread.id and made.message.content == "hello"
        # ... but cannot post into the forum channel itself.
        with pytest.raises(discord.HTTPException) as refused:
            await bot.http.send_message(
                forum_id,
                params=discord.http.MultipartParameters(
                    payload={"content": "x"}, multipart=None, files=None
                ),
            )
        assert refused.value.code == 50008
        await made.thread.send("reply in the post")

    assert [m["content"] for m in bot_messages(fake_discord, made.thread.id)] == [
        "hello",
        "reply in the post",
    ]
    assert fake_discord.unknown_routes == []


async def test_message_command_carries_the_resolved_message(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    seen: list[tuple[int, str]] = []

    @bot.tree.context_menu(name="Quote it")
    async def quote_it(interaction: discord.Interaction, message: discord.Message) -> None:
        seen.append((message.id, message.content))
        await interaction.response.send_message("ok", ephemeral=True)

    general = fake_discord.channel_ids["general"]
    async with running_client(bot, fake_discord.token):
        await bot.tree.sync()
        (menu,) = fake_discord.commands()
        assert menu["type"] == 3 and menu["name"] == "Quote it"
        target = fake_discord.send_message(general, "alice", "quote me")
        payload = fake_discord.send_message_command("Quote it", target, user="bob")
        assert payload["data"]["target_id"] == target["id"]
        await fake_discord.wait_for(lambda: seen)
        with pytest.raises(ValueError):
            fake_discord.send_message_command("No such menu", target)
    assert seen == [(int(target["id"]), "quote me")]
