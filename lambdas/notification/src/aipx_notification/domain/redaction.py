"""Keeps secrets (tokens, webhook URLs, signing keys) out of anything that may be logged or raised."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"


class Redactor:
    """Replaces every configured secret (and its URL-encoded form) with ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants = set()
        for secret in secrets:
            if len(secret) >= 4:  # a 1-3 character "secret" would mask ordinary text
                variants.update({secret, quote(secret, safe=""), quote(secret, safe="/:")})
        self._secrets = sorted(variants, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text
