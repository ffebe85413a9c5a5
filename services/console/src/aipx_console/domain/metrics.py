"""Key figures and feed health from the services' Prometheus metrics (text exposition format, parsed here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Labels
    value: float

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


def parse_exposition(text: str) -> list[Sample]:
    """Every sample of a /metrics page (ValueError for a page that is not the text format)."""
    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.append(Sample(s.name, tuple(sorted(s.labels.items())), float(s.value)))
    return samples


def _sum(samples: Iterable[Sample], name: str, **match: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.label(k) == v for k, v in match.items()))


def _by(samples: Iterable[Sample], name: str, *labels: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for s in samples:
        if s.name == name:
            key = tuple(s.label(label) for label in labels)
            out[key] = out.get(key, 0.0) + s.value
    return out


def histogram_quantile(samples: Iterable[Sample], name: str, q: float) -> float | None:
    """The q-quantile of a histogram's buckets summed over every label set (upper bound of its bucket)."""
    buckets: dict[float, float] = {}
    for s in samples:
        if s.name == f"{name}_bucket":
            le = s.label("le")
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + s.value
    if not buckets:
        return None
    ordered = sorted(buckets.items())
    total = ordered[-1][1]
    if total <= 0:
        return None
    for bound, count in ordered:
        if count >= q * total:
            return bound
    return ordered[-1][0]


@dataclass
class RateTracker:
    """Per-second rates of counters between two scrapes (a counter reset counts from zero)."""

    last: dict[str, tuple[float, float]] = field(default_factory=dict)

    def rate(self, key: str, value: float, at_s: float) -> float | None:
        previous = self.last.get(key)
        self.last[key] = (value, at_s)
        if previous is None or at_s <= previous[1]:
            return None
        delta = value - previous[0] if value >= previous[0] else value
        return delta / (at_s - previous[1])


def _num(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def ingestion_figures(samples: list[Sample], rates: RateTracker, at_s: float) -> dict[str, object]:
    """Feed health per venue and stream, plus the ingestion totals."""
    ns = "aipx_ingestion"
    venues: dict[str, dict[str, object]] = {}

    def venue(name: str) -> dict[str, object]:
        return venues.setdefault(name, {"venue": name, "streams": {}})

    for (v,), value in _by(samples, f"{ns}_messages_in_total", "venue").items():
        row = venue(v)
        row["messages"] = value
        row["rate"] = _num(rates.rate(f"in:{v}", value, at_s), 1)
    for (v,), value in _by(samples, f"{ns}_reconnects_total", "venue").items():
        venue(v)["reconnects"] = value
    for (v,), value in _by(samples, f"{ns}_connections", "venue").items():
        venue(v)["connections"] = value
    for (v,), value in _by(samples, f"{ns}_stale_streams", "venue").items():
        venue(v)["stale_streams"] = value
    for (v,), value in _by(samples, f"{ns}_malformed_frames_total", "venue").items():
        venue(v)["malformed"] = value
    for metric, what in ((f"{ns}_gaps_total", "gaps"), (f"{ns}_resyncs_total", "resyncs")):
        for (v, stream), value in _by(samples, metric, "venue", "stream").items():
            streams = venue(v)["streams"]
            assert isinstance(streams, dict)
            row = streams.setdefault(stream, {"stream": stream})
            row[what] = value
            row[f"{what}_per_min"] = _num(_per_min(rates.rate(f"{what}:{v}:{stream}", value, at_s)), 2)
    for row in venues.values():
        streams = row["streams"]
        assert isinstance(streams, dict)
        row["streams"] = [streams[k] for k in sorted(streams)]
    return {
        "venues": [venues[k] for k in sorted(venues)],
        "dropped": _sum(samples, f"{ns}_dropped_total"),
        "buffer_depth": _sum(samples, f"{ns}_buffer_depth"),
        "produce_p99_s": _num(histogram_quantile(samples, f"{ns}_produce_latency_seconds", 0.99), 4),
    }


def _per_min(rate: float | None) -> float | None:
    return None if rate is None else rate * 60


def oms_figures(samples: list[Sample], rates: RateTracker, at_s: float) -> dict[str, object]:
    """Outbox lag, request rate and errors, open orders, p99 latency of the OMS."""
    ns = "aipx_oms"
    total = _sum(samples, f"{ns}_requests_total")
    errors = sum(
        v for (code,), v in _by(samples, f"{ns}_requests_total", "code").items() if code not in {"OK", ""}
    )
    request_rate = rates.rate("oms:requests", total, at_s)
    error_rate = rates.rate("oms:errors", errors, at_s)
    return {
        "outbox_lag_events": _sum(samples, f"{ns}_outbox_lag_events"),
        "outbox_lag_s": _num(_sum(samples, f"{ns}_outbox_lag_seconds")),
        "open_orders": _sum(samples, f"{ns}_open_orders"),
        "requests": total,
        "request_rate": _num(request_rate, 1),
        "error_rate": _num(error_rate, 2),
        "p99_s": _num(histogram_quantile(samples, f"{ns}_request_seconds", 0.99), 4),
        "risk_denials": _sum(samples, f"{ns}_risk_denials_total"),
    }


def runner_figures(samples: list[Sample]) -> dict[str, object]:
    """Dead-lettered records and failed invocations of a cold-path function."""
    ns = "aipx_runner"
    return {
        "dead_lettered": _sum(samples, f"{ns}_dead_lettered_total"),
        "records": _sum(samples, f"{ns}_records_total"),
        "failed_invocations": sum(
            v
            for (outcome,), v in _by(samples, f"{ns}_invocations_total", "outcome").items()
            if outcome != "ok"
        ),
    }


def figures_for(samples: list[Sample], rates: RateTracker, at_s: float) -> dict[str, object]:
    """The figures of whatever service exposed `samples` (told apart by the metric names it has)."""
    names = {s.name for s in samples}
    if any(n.startswith("aipx_ingestion_") for n in names):
        return {"kind": "ingestion", **ingestion_figures(samples, rates, at_s)}
    if any(n.startswith("aipx_oms_") for n in names):
        return {"kind": "oms", **oms_figures(samples, rates, at_s)}
    if any(n.startswith("aipx_runner_") for n in names):
        return {"kind": "runner", **runner_figures(samples)}
    return {"kind": "other"}
