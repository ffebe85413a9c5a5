"""Cognitive domain: analysts, the ensemble vote, signal validation, decisions and orders (no I/O)."""
