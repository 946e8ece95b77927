"""Confab's core: config, messages, the router, the skill API, ReplyStream, the models
(``confab.bot.llm``), the app's lifecycle and the CLI. Internal: plugins import ``confab``."""
