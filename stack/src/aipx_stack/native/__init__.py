"""The native stack: Kafka (KRaft, Maven jars), PostgreSQL and Redis (system packages), moto S3 server."""

from aipx_stack.native.stack import NativeStack

__all__ = ["NativeStack"]
