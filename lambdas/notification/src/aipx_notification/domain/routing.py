"""Which channels get which event types, and what the message says (configured per event type).

Routes map event-type patterns (fnmatch: "order.*", "decision.approve") to channel names ("telegram",
"slack", "webhook:<name>", or "*" for every configured channel); an event goes to the union of the channels
of every matching pattern. Templates are str.format strings over the event's fields; the most specific match
wins: the exact type, then the longest matching pattern, then the family default.
"""

from __future__ import annotations

import fnmatch
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aipx_notification.domain.events import NotifiableEvent, sample

DEFAULT_ROUTES: dict[str, list[str]] = {
    "order.filled": ["*"],
    "order.partially_filled": ["*"],
    "order.denied": ["*"],
    "order.rejected": ["*"],
    "order.canceled": ["*"],
    "order.expired": ["*"],
    "decision.approve": ["*"],
}

DEFAULT_TEMPLATES: dict[str, str] = {
    "order.*": "[{event}] {side} {quantity} {symbol} ({order_type}) — order {order_id}, status {status}",
    "order.filled": "[FILLED] {side} {fill_quantity} {symbol} @ {fill_price} — order {order_id} "
    "(filled {filled_quantity}, avg {average_fill_price})",
    "order.partially_filled": "[PARTIAL FILL] {side} {fill_quantity} {symbol} @ {fill_price} — order "
    "{order_id} (filled {filled_quantity} of {quantity})",
    "order.denied": "[DENIED] {side} {quantity} {symbol} — {reason}: {reason_message}",
    "order.rejected": "[REJECTED] {side} {quantity} {symbol} — {reason}: {reason_message}",
    "decision.*": "[{verdict}] {direction} {symbol} ({strategy_id}), confidence {confidence}: {rationale}",
}


class TemplateError(ValueError):
    """A template names a field its events do not have, or is malformed."""


def validate_template(pattern: str, template: str) -> None:
    """Render `template` against the fields of its family; TemplateError saying what is wrong."""
    family = pattern.split(".", 1)[0]
    if family not in ("order", "decision"):
        raise TemplateError(f"template {pattern!r}: event types start with 'order.' or 'decision.'")
    try:
        for _, name, _, _ in string.Formatter().parse(template):
            if name is not None and name not in sample(family):
                raise TemplateError(f"template {pattern!r}: unknown field {{{name}}}")
        template.format_map(sample(family))
    except (ValueError, IndexError, KeyError) as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(f"template {pattern!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Router:
    routes: Mapping[str, tuple[str, ...]]
    templates: Mapping[str, str]
    channels: tuple[str, ...]  # every configured channel name

    @classmethod
    def build(
        cls,
        routes: Mapping[str, Iterable[str]],
        templates: Mapping[str, str],
        channels: Iterable[str],
    ) -> Router:
        """Validated routes (known channels only) and templates (defaults overridden by `templates`)."""
        known = tuple(channels)
        for pattern, targets in routes.items():
            for target in targets:
                if target != "*" and target not in known:
                    raise ValueError(
                        f"route {pattern!r} names channel {target!r}, which is not configured "
                        f"(configured: {', '.join(known) or 'none'})"
                    )
        merged = {**DEFAULT_TEMPLATES, **templates}
        for pattern, template in merged.items():
            validate_template(pattern, template)
        return cls({p: tuple(t) for p, t in routes.items()}, merged, known)

    def channels_for(self, event: NotifiableEvent) -> list[str]:
        """The channels `event` goes to, in configuration order."""
        wanted: set[str] = set()
        for pattern, targets in self.routes.items():
            if fnmatch.fnmatchcase(event.event_type, pattern):
                wanted.update(self.channels if "*" in targets else targets)
        return [c for c in self.channels if c in wanted]

    def render(self, event: NotifiableEvent) -> str:
        template = self.templates.get(event.event_type)
        if template is None:
            matching = [p for p in self.templates if fnmatch.fnmatchcase(event.event_type, p)]
            pattern = max(matching, key=len) if matching else f"{event.family}.*"
            template = self.templates.get(pattern, DEFAULT_TEMPLATES[f"{event.family}.*"])
        return template.format_map(event.fields)
