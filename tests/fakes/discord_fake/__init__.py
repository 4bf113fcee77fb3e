"""The fake Discord by concern; `tests.fakes.discord_server.FakeDiscord` is its front."""
