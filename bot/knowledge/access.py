"""The knowledge base as one message's author may use it (implements confab.bot.skill.Knowledge)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confab.bot.adapter import Adapter
from confab.bot.errors import ConfabError, NotAllowed, SkillError
from confab.bot.knowledge.base import KnowledgeBase
from confab.bot.knowledge.documents import kind_of, read_document_bytes
from confab.bot.knowledge.passage import Passage, Quote, Where
from confab.bot.knowledge.sources import source_of
from confab.bot.messages import Message
from confab.storage.errors import StorageUnavailable
from confab.storage.records import StoredDocument

log = logging.getLogger(__name__)


class ChannelKnowledge:
    """Searches within what the author may read here; adds and removes documents for admins."""

    enabled = True

    def __init__(
        self, base: KnowledgeBase, message: Message, adapter: Adapter, *, admin: bool
    ) -> None:
        self._base = base
        self._message = message
        self._adapter = adapter
        self._admin = admin
        self._where = Where(message.platform, message.channel)

    async def search(self, query: str, *, limit: int | None = None) -> list[Passage]:
        return await self._base.search(query, self._where, limit=limit)

    async def relevant(self, query: str) -> list[Passage]:
        config = self._base.config
        try:
            found = await self.search(query, limit=config.max_passages)
        except StorageUnavailable:
            raise  # the router says the database is away
        except Exception as error:  # the question is still answered, without passages
            log.warning(
                "knowledge search for message %s in %s/%s failed, answering without it: %r",
                self._message.id, self._message.platform, self._message.channel, error,
            )  # fmt: skip
            return []
        return [p for p in found if p.similarity >= config.min_similarity]

    async def quotes(self, passages: Sequence[Passage], question: str) -> list[Quote]:
        return await self._base.quotes(passages, question)

    async def source(self, passage: Passage) -> str:
        async def link(channel: str, message_id: str, thread: str | None) -> str | None:
            return await self._adapter.link(channel, message_id, thread=thread)

        # Only a passage of this platform can be linked by this adapter.
        same_platform = passage.platform == self._message.platform
        return await source_of(passage, link if same_platform else None)

    def _require_admin(self, doing: str) -> None:
        if not self._admin:
            message = self._message
            raise NotAllowed(
                f"Only an admin can {doing}.",
                f"{message.platform}:{message.author.id} is not an admin",
            )

    async def add_attachment(self, *, everywhere: bool = False) -> list[str]:
        self._require_admin("add documents to my knowledge")
        message = self._message
        if not message.attachments:
            raise SkillError("Attach the file to the message that says `kb add`.")
        here = f"{message.platform}:{message.channel}"
        limit = int(self._base.config.max_file_mb * 1024 * 1024)
        lines = []
        for attachment in message.attachments:
            try:
                kind_of(attachment.name)  # refused by name before any download
                data = await self._adapter.download(attachment, max_bytes=limit)
                document = read_document_bytes(attachment.name, data, max_bytes=limit)
                added = await self._base.add(
                    document,
                    source=f"chat:{here}:{attachment.name}",
                    channels=None if everywhere else [here],
                    added_by=f"{message.platform}:{message.author.id}",
                )
            except ConfabError as error:
                log.info("kb add of %r in %s refused: %s", attachment.name, here, error)
                lines.append(error.user_message)
                continue
            doc = added.document
            scope = "everywhere" if everywhere else "in this channel"
            lines.append(
                f"{doc.name}: {added.outcome}"
                + ("" if added.outcome == "unchanged" else f", {doc.chunks} passages, {scope}")
                + "."
            )
            log.info("kb %s %s (%d passages) from %s", added.outcome, doc.source, doc.chunks, here)
        return lines

    async def documents(self) -> list[StoredDocument]:
        here = f"{self._message.platform}:{self._message.channel}"
        return [d for d in await self._base.documents() if d.channels is None or here in d.channels]

    async def remove(self, name: str) -> list[StoredDocument]:
        self._require_admin("remove documents from my knowledge")
        removed = []
        for doc in await self.documents():  # only what answers here
            if name in (doc.name, doc.source):
                removed.extend(await self._base.remove(doc.source))
        for doc in removed:
            log.info("kb removed %s at %s's request", doc.source, self._message.author.id)
        return removed
