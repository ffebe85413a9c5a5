"""Pure ingestion logic (no I/O): parsed venue events, normalization, sequencing, order-book sync."""
