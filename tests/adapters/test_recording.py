"""The in-memory adapter shipped in confab.bot.testing honours the contract too."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from confab.bot.adapter import Limits
from confab.bot.messages import Author, Message, SentMessage
from confab.bot.testing import RecordingAdapter
from confab.contract import AdapterContract


@dataclass
class RecordingUnderTest:
    adapter: RecordingAdapter
    channel: str = "c1"

    def shown(self, sent: SentMessage) -> str:
        return self.adapter.shown(sent)

    async def seed_history(self, channel: str, entries: list[tuple[str, str]]) -> None:
        for author, text in entries:
            self.adapter.timeline.append(
                Message(platform="test", channel=channel, author=Author(author, author), text=text)
            )


class TestRecordingAdapter(AdapterContract):
    @pytest.fixture(params=[None, 500], ids=["uncapped", "capped"])
    def under_test(self, request: pytest.FixtureRequest) -> RecordingUnderTest:
        return RecordingUnderTest(RecordingAdapter(limits=Limits(max_message_chars=request.param)))
