"""Platform adapters; each registers through the ``confab.adapters`` entry point."""
