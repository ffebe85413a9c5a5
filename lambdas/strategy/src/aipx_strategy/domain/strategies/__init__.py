"""The strategy registry: every strategy is a plug-in, found through the `aipx.strategies` entry point group.

The six built-in strategies are registered the same way as anyone's (in lambdas/strategy/pyproject.toml,
`[project.entry-points."aipx.strategies"]`): an entry point named after the strategy id, pointing at its
`Strategy` subclass. A strategy shipped in its own package (see examples/strategy-plugin, the template) is
picked up by the live strategy function, the Lambda build and the backtester once it is installed, without
editing AIPX. Built-ins come first, then plug-ins by distribution name; within one, the order of its metadata
(build backends write entry points sorted by name).
A plug-in that fails to load, is not a `Strategy`, or whose `id` differs from its entry point name is left
out with a warning naming it (configuring it is then the usual "unknown strategy" error).
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, distributions

from aipx_strategy.domain.strategies.base import (
    Bar,
    Direction,
    MarketContext,
    SignalIntent,
    Strategy,
    StrategyParams,
)

GROUP = "aipx.strategies"
BUILTIN_DISTRIBUTION = "aipx-strategy"
log = logging.getLogger(__name__)


def _entry_points() -> list[tuple[str, EntryPoint]]:
    """(distribution name, entry point) of the group: the built-ins first, then plug-ins by name."""
    found: dict[str, list[EntryPoint]] = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name in found:  # the same distribution on sys.path twice: the first one wins, as for imports
            continue
        eps = [ep for ep in dist.entry_points if ep.group == GROUP]
        if eps:
            found[name] = eps
    order = sorted(found, key=lambda n: (n != BUILTIN_DISTRIBUTION, n))
    return [(name, ep) for name in order for ep in found[name]]


def discover() -> dict[str, type[Strategy]]:
    """Load every strategy of the `aipx.strategies` group (see the module docstring)."""
    registry: dict[str, type[Strategy]] = {}
    for dist, ep in _entry_points():
        where = f"strategy plug-in {ep.name!r} ({ep.value}, from {dist})"
        try:
            cls = ep.load()
        except Exception as exc:
            log.warning("%s could not be loaded: %s: %s", where, type(exc).__name__, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            log.warning("%s is not a Strategy subclass", where)
            continue
        if getattr(cls, "id", None) != ep.name:
            log.warning("%s declares id %r: the entry point must be named after the id", where, cls.id)
            continue
        if ep.name in registry:
            log.warning("%s: the id is already registered by %s", where, registry[ep.name].__module__)
            continue
        registry[ep.name] = cls
    if not registry:
        raise RuntimeError(
            f"no strategies in the {GROUP!r} entry point group: "
            "is aipx-strategy installed (not just on sys.path)?"
        )
    return registry


REGISTRY: dict[str, type[Strategy]] = discover()


def refresh() -> dict[str, type[Strategy]]:
    """Discover again (after installing a plug-in into a running process); updates REGISTRY in place."""
    found = discover()
    REGISTRY.clear()
    REGISTRY.update(found)
    return REGISTRY


def strategy_class(strategy_id: str) -> type[Strategy]:
    """The registered strategy `strategy_id`; KeyError naming the known ids otherwise."""
    try:
        return REGISTRY[strategy_id]
    except KeyError:
        raise KeyError(f"unknown strategy {strategy_id!r}; known: {', '.join(REGISTRY)}") from None


__all__ = [
    "GROUP",
    "REGISTRY",
    "Bar",
    "Direction",
    "MarketContext",
    "SignalIntent",
    "Strategy",
    "StrategyParams",
    "discover",
    "refresh",
    "strategy_class",
]
