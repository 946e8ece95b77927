"""The admin page: a login, and views of what the bot does, each with its changes."""
