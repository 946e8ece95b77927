"""Language-model backends: the interface the core uses and its implementations."""

from bot.llm.backend import ChatMessage, GenerationParams, ModelBackend

__all__ = ["ChatMessage", "GenerationParams", "ModelBackend"]
