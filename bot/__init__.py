"""Confab: a chat bot service with pluggable skills and a shared language model."""

__version__ = "0.1.0"
