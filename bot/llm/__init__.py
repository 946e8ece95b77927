"""Language-model backends: the interface the core uses and its implementations."""

from confab.bot.llm.backend import ChatMessage, GenerationParams, ModelBackend

__all__ = ["ChatMessage", "GenerationParams", "ModelBackend"]
