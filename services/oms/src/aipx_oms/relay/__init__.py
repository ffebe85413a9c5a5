"""The outbox relay: order events from PostgreSQL to Kafka."""
