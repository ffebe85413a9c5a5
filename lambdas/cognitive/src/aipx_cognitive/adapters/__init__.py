"""Adapters of the cognitive function: LLM SDK clients, the OMS gRPC client, Redis."""
