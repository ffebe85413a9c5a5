"""AIPX operator console: Kafka topics, the OMS API and the services' /metrics, pushed live to a browser."""
