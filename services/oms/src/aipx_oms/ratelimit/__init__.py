"""Per-account order rate limiting (Redis token bucket)."""
