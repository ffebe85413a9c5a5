"""Adapters of the strategy function: Redis state store."""
