"""One person's stored data as JSON: what ``confab db export`` writes.

It holds what ``forget me`` would delete (their turns and the bot's replies to
them) plus their user record, settings and the skill state kept in their scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from confab.storage import migrate
from confab.storage.conversations import ConversationStore
from confab.storage.database import Database
from confab.storage.skill_state import SkillStateStore, user_scope
from confab.storage.users import UserStore

FORMAT = "confab-user-export/1"


async def export_user(database: Database, platform: str, user_id: str) -> dict[str, Any]:
    """Everything stored about ``user_id`` on ``platform``, as JSON-ready data."""
    await migrate.require_head(database.engine)
    user = await UserStore(database).get(platform, user_id)
    turns = await ConversationStore(database).by_author(platform, user_id)
    state = await SkillStateStore(database).in_scope(user_scope(platform, user_id))
    return {
        "format": FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "platform": platform,
        "user_id": user_id,
        "user": None
        if user is None
        else {
            "display_name": user.display_name,
            "settings": user.settings,
            "first_seen_at": user.created_at.isoformat(),
        },
        "turns": [
            {
                "id": turn.id,
                "channel": key.channel,
                "thread": key.thread,
                "role": turn.role,
                "author_id": turn.author_id,
                "author_name": turn.author_name,
                "text": turn.text,
                "addressed": turn.addressed,
                "command": turn.command,
                "skill": turn.skill,
                "reply_to_id": turn.reply_to_id,
                "reply_to_author_id": turn.reply_to_author_id,
                "platform_message_id": turn.platform_message_id,
                "created_at": turn.created_at.isoformat(),
            }
            for key, turn in turns
        ],
        "skill_state": [{"skill": s, "key": k, "value": v} for s, k, v in state],
    }
