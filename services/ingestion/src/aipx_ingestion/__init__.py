"""AIPX market-data ingestion: exchange WebSocket feeds -> normalized protobuf envelopes -> Kafka."""
