"""What opted-in channels said, as question-and-answer exchanges for fine-tuning.

Only channels whose settings have ``training_optin`` (``!train optin``) are read;
a channel that never opted in contributes nothing, whatever else is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import aliased

from confab.storage.channels import opted_in_channels
from confab.storage.conversations import ConversationKey, StoredTurn, stored_turn
from confab.storage.database import Database
from confab.storage.tables import ConversationRow, TurnRow, UserRow


@dataclass(frozen=True, slots=True)
class Exchange:
    """A person's question and the bot's answer to it, in one conversation."""

    key: ConversationKey
    question: StoredTurn
    answer: StoredTurn


async def opted_in_exchanges(database: Database, skills: tuple[str, ...]) -> list[Exchange]:
    """Every answered question of the given skills in opted-in channels (threads
    included), conversation by conversation, in the order they were asked."""
    await database.write_queue.barrier()  # what the write queue holds is written first
    channels = await opted_in_channels(database)
    if not channels:
        return []
    answer = aliased(TurnRow)
    exchanges: list[Exchange] = []
    async with database.reading() as session:
        for platform, channel in channels:
            rows = await session.execute(
                select(ConversationRow, TurnRow, answer)
                .join(TurnRow, TurnRow.conversation_id == ConversationRow.id)
                .join(answer, answer.reply_to_id == TurnRow.id)
                .where(
                    ConversationRow.platform == platform,
                    ConversationRow.channel == channel,
                    TurnRow.role == "user",
                    TurnRow.skill.in_(skills),
                    answer.role == "assistant",
                )
                .order_by(ConversationRow.id, TurnRow.id, answer.id)
            )
            seen: set[int] = set()
            for conversation, question, reply in rows:
                if question.id in seen:  # an answer sent in parts: its first part stands
                    continue
                seen.add(question.id)
                key = ConversationKey(
                    conversation.platform, conversation.channel, conversation.thread or None
                )
                exchanges.append(Exchange(key, stored_turn(question), stored_turn(reply)))
    return exchanges


async def display_names(database: Database, platform: str) -> dict[str, str]:
    """Every recorded person of ``platform``: their id and display name."""
    async with database.reading() as session:
        rows = await session.execute(
            select(UserRow.platform_user_id, UserRow.display_name).where(
                UserRow.platform == platform
            )
        )
        return {user_id: name for user_id, name in rows}
