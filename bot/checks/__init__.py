"""Checks that make answers right before they are shown: exact arithmetic and unit
conversions, self-consistency of facts, and running code in a sandbox."""
