"""Confab's public face: what a plugin imports.

A skill needs only this module::

    from confab import Skill, SkillContext, SkillError

It loads no database or model code. The test helpers are in :mod:`confab.testing`
(and the ``chat`` pytest fixture, installed with the package), the adapter
contract suite in :mod:`confab.contract`. Everything under ``confab.bot``,
``confab.storage``, ``confab.adapters`` and ``confab.skills`` is internal and may move.
"""

from importlib.metadata import PackageNotFoundError, version

from confab.bot.arguments import Arg, ArgumentError
from confab.bot.errors import ConfabError, NotAllowed, SkillError
from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend
from confab.bot.messages import Attachment, Author, Message
from confab.bot.prompts import PromptTemplates
from confab.bot.skill import (
    ChannelSettings,
    ConversationMemory,
    GenerationSettings,
    Passage,
    Quote,
    ScheduledJob,
    Skill,
    SkillContext,
    SkillInfo,
    SkillState,
    StateScope,
    label_speakers,
)
from confab.bot.skill_lifecycle import SkillApp

try:
    __version__ = version("confab-bot")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Arg",
    "ArgumentError",
    "Attachment",
    "Author",
    "ChannelSettings",
    "ChatMessage",
    "ConfabError",
    "ConversationMemory",
    "GenerationParams",
    "GenerationSettings",
    "Message",
    "ModelBackend",
    "NotAllowed",
    "Passage",
    "PromptTemplates",
    "Quote",
    "ScheduledJob",
    "Skill",
    "SkillApp",
    "SkillContext",
    "SkillError",
    "SkillInfo",
    "SkillState",
    "StateScope",
    "__version__",
    "label_speakers",
]
