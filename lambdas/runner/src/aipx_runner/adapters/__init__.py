"""Adapters of the runner: the Kafka side of an event source mapping."""
