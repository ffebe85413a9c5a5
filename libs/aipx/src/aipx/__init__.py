"""AIPX shared library: contracts (aipx.v1), settings, topics, serialization, Kafka, logging, metrics."""
