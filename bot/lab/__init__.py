"""The model lab: preparing datasets, LoRA fine-tuning, evaluation, and their commands.

Serving (``confab.bot.llm``) never imports it; the lab builds on serving's loading.
"""
