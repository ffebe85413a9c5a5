"""Adapters of the recorder: the object store (S3)."""
