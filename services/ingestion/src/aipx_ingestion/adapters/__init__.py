"""I/O adapters of the ingestion service: venue WebSockets, REST snapshots, the Kafka sink."""
