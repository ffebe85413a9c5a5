"""Adapters of the notification function: Redis sent-markers."""
