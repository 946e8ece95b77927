"""``confab slack manifest``: the Slack app manifest for the installed skills and config."""

from __future__ import annotations

import argparse
import sys

from confab.adapters.slack.config import SlackConfig
from confab.adapters.slack.manifest import render_manifest, slack_manifest
from confab.bot.adapter import AdapterContext, AdapterTool


class ManifestTool(AdapterTool):
    name = "manifest"
    help = "print the Slack app manifest for the installed skills and this config"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--format", choices=("yaml", "json"), default="yaml")
        parser.add_argument(
            "--url",
            metavar="URL",
            help=(
                "the bot's public https:// address, for HTTP mode (Slack posts to URL/slack/events)"
            ),
        )

    def run(self, args: argparse.Namespace, context: AdapterContext) -> int:
        config = context.config
        assert isinstance(config, SlackConfig)
        manifest, warnings = slack_manifest(
            config, context.skills, bot_name=context.bot_name, public_url=args.url
        )
        for warning in warnings:
            print(f"confab: {warning}", file=sys.stderr)
        print(render_manifest(manifest, args.format))
        return 0
