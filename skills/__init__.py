"""Confab's built-in skills; each registers through the ``confab.skills`` entry point."""
