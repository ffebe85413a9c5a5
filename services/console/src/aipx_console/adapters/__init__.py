"""The console's connections to the world: Kafka topics, the OMS gRPC API, the services' /metrics."""
