"""An adapter module whose platform SDK is not installed, as the Discord adapter looks
on an install without ``confab-bot[discord]``."""

raise ModuleNotFoundError("No module named 'discord'", name="discord")
