"""The outputs of a backtest: result.json, a self-contained HTML report (inline SVG charts, no script, no
network), trades.csv, and a console summary table."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from aipx_backtest.data import iso
from aipx_backtest.metrics import Metrics
from aipx_backtest.result import COMBINED, BacktestResult

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
MAX_POINTS = 1500
COLUMNS = (
    ("total_return", "return", True),
    ("cagr", "CAGR", True),
    ("sharpe", "Sharpe", False),
    ("sortino", "Sortino", False),
    ("max_drawdown", "max DD", True),
    ("max_drawdown_duration_s", "DD dur", False),
    ("win_rate", "win rate", True),
    ("profit_factor", "PF", False),
    ("expectancy", "expectancy", False),
    ("avg_win", "avg win", False),
    ("avg_loss", "avg loss", False),
    ("exposure", "exposure", True),
    ("trades", "trades", False),
    ("net_pnl", "net PnL", False),
)


def _cell(metrics: Metrics, name: str, percent: bool) -> str:
    value = getattr(metrics, name)
    if value is None:
        return "-"
    if name == "max_drawdown_duration_s":
        return _duration(int(value))
    if isinstance(value, Decimal):
        if percent:
            return f"{value * 100:.2f}%"
        return f"{value:.2f}" if name not in ("sharpe", "sortino", "profit_factor") else f"{value:.3f}"
    return str(value)


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d{hours:02d}h" if days else f"{hours}h{rest // 60:02d}m"


def console_table(result: BacktestResult) -> str:
    """The metrics of every strategy and the combined account as a fixed-width table."""
    header = ["strategy", "signals", *[label for _, label, _ in COLUMNS]]
    rows = [header]
    for name, metrics in result.metrics.items():
        signals = str(sum(result.signals.values())) if name == COMBINED else str(result.signals.get(name, 0))
        rows.append([name, signals, *[_cell(metrics, key, pct) for key, _, pct in COLUMNS]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if i == 0 or (i == len(rows) - 2 and rows[-1][0] == COMBINED):
            lines.append("  ".join("-" * w for w in widths))
    span = f"{iso(result.start_ns)} .. {iso(result.end_ns)}"
    head = (
        f"backtest of {', '.join(result.symbols)} {span}: {result.trades_replayed} trades replayed, "
        f"fees maker {result.config.maker_fee_rate} / taker {result.config.taker_fee_rate}, "
        f"slippage {result.config.slippage_bps} bps, ensemble {'on' if result.config.ensemble else 'off'}"
    )
    denied = (
        ""
        if not result.denied
        else "\nrisk denials: " + ", ".join(f"{k} {v}" for k, v in result.denied.items())
    )
    return head + "\n" + "\n".join(lines) + denied


# --- SVG -----------------------------------------------------------------------------------------------


def _thin(points: Sequence[tuple[int, Decimal]]) -> list[tuple[int, float]]:
    step = max(1, len(points) // MAX_POINTS)
    kept = list(points[::step])
    if points and kept[-1] != points[-1]:
        kept.append(points[-1])
    return [(t, float(v)) for t, v in kept]


def _chart(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[int, Decimal]]]],
    *,
    markers: Sequence[tuple[int, Decimal, str, str]] = (),
    percent: bool = False,
    invert: bool = False,
) -> str:
    """A line chart as inline SVG; markers are (time, value, shape 'up'|'down'|'x', color)."""
    width, height, left, right, top, bottom = 960, 280, 70, 150, 28, 30
    thinned = [(name, _thin(points)) for name, points in series if points]
    values = [v for _, pts in thinned for _, v in pts] + [float(v) for _, v, _, _ in markers]
    times = [t for _, pts in thinned for t, _ in pts]
    if not values or not times:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    lo, hi = min(values), max(values)
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    t0, t1 = min(times), max(times)
    t1 = t1 if t1 > t0 else t0 + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: int) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        frac = (v - lo) / (hi - lo)
        return top + (frac if invert else 1 - frac) * plot_h

    def label(v: float) -> str:
        if percent:
            return f"{v * 100:.2f}%"
        return f"{v:,.0f}" if abs(v) >= 10_000 else f"{v:,.6g}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>',
    ]
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = lo + (hi - lo) * frac
        yy = y(v)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{left - 4}" y="{yy + 4:.1f}" font-size="10" text-anchor="end">{label(v)}</text>'
        )
    out.append(f'<text x="{left}" y="{height - 8}" font-size="10">{iso(t0)}</text>')
    out.append(
        f'<text x="{left + plot_w}" y="{height - 8}" font-size="10" text-anchor="end">{iso(t1)}</text>'
    )
    for i, (name, pts) in enumerate(thinned):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        stroke = 2.2 if name == COMBINED else 1.2
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="{stroke}" points="{path}"/>')
        ly = top + 14 * i + 10
        out.append(f'<rect x="{left + plot_w + 10}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{left + plot_w + 24}" y="{ly + 1}" font-size="11">{html.escape(name)}</text>')
    for t, value, shape, color in markers:
        cx, cy = x(t), y(float(value))
        if shape == "up":
            triangle = f"{cx:.1f},{cy - 6:.1f} {cx - 5:.1f},{cy + 4:.1f} {cx + 5:.1f},{cy + 4:.1f}"
            out.append(f'<polygon points="{triangle}" fill="{color}"/>')
        elif shape == "down":
            triangle = f"{cx:.1f},{cy + 6:.1f} {cx - 5:.1f},{cy - 4:.1f} {cx + 5:.1f},{cy - 4:.1f}"
            out.append(f'<polygon points="{triangle}" fill="{color}"/>')
        else:
            circle = f'cx="{cx:.1f}" cy="{cy:.1f}" r="3.5"'
            out.append(f'<circle {circle} fill="none" stroke="{color}" stroke-width="1.5"/>')
    out.append("</svg>")
    return "\n".join(out)


def html_report(result: BacktestResult) -> str:
    """One self-contained HTML page: metrics, equity, drawdown, trades on price per symbol, the trade list."""
    curves = result.curves
    equity = [
        (name, list(zip(c.times, c.equity, strict=True))) for name, c in curves.items() if name != COMBINED
    ]
    combined = curves[COMBINED]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>AIPX backtest</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;"
        "font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}th{background:#f4f4f4}"
        "td:first-child,th:first-child{text-align:left}svg{display:block;margin:12px 0}"
        ".wide{overflow-x:auto}</style></head><body>",
        "<h1>AIPX backtest</h1>",
        f"<p>{html.escape(', '.join(result.symbols))}, {iso(result.start_ns)} to {iso(result.end_ns)}; "
        f"{result.trades_replayed} trades replayed; "
        f"candles {html.escape(', '.join(result.config.intervals))}; "
        f"fees maker {result.config.maker_fee_rate} / taker {result.config.taker_fee_rate}, slippage "
        f"{result.config.slippage_bps} bps; starting balance {result.config.balance} per strategy; ensemble "
        f"{'on (offline analysts)' if result.config.ensemble else 'off'}.</p>",
        "<h2>Metrics</h2><div class='wide'><table><tr><th>strategy</th><th>signals</th><th>approved</th>",
        *[f"<th>{html.escape(label)}</th>" for _, label, _ in COLUMNS],
        "</tr>",
    ]
    for name, metrics in result.metrics.items():
        signals = sum(result.signals.values()) if name == COMBINED else result.signals.get(name, 0)
        approved = sum(result.approved.values()) if name == COMBINED else result.approved.get(name, 0)
        cells = "".join(f"<td>{html.escape(_cell(metrics, key, pct))}</td>" for key, _, pct in COLUMNS)
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{signals}</td><td>{approved}</td>{cells}</tr>")
    parts.append("</table></div>")
    if result.denied:
        denied = ", ".join(f"{k}: {v}" for k, v in result.denied.items())
        parts.append(f"<p>Orders denied by pre-trade risk: {html.escape(denied)}</p>")
    parts.append(
        _chart("Equity (combined)", [(COMBINED, list(zip(combined.times, combined.equity, strict=True)))])
    )
    parts.append(_chart("Equity per strategy", equity))
    drawdowns = [(name, list(zip(c.times, c.drawdown, strict=True))) for name, c in curves.items()]
    parts.append(_chart("Drawdown", drawdowns, percent=True, invert=True))
    for symbol in result.symbols:
        trades = [t for t in result.trades if t.symbol == symbol]
        markers: list[tuple[int, Decimal, str, str]] = []
        for t in trades:
            color = "#2ca02c" if t.direction == "LONG" else "#d62728"
            markers.append((t.entry_time_ns, t.entry_price, "up" if t.direction == "LONG" else "down", color))
            markers.append((t.exit_time_ns, t.exit_price, "x", "#333"))
        title = f"{symbol}: closes, entries (green up = long, red down = short), exits (circles)"
        parts.append(_chart(title, [(symbol, result.prices.get(symbol, []))], markers=markers))
    parts.append(f"<h2>Trades ({len(result.trades)})</h2><table><tr>")
    headers = (
        "strategy",
        "symbol",
        "dir",
        "qty",
        "entry",
        "entry price",
        "exit",
        "exit price",
        "fees",
        "PnL",
        "%",
    )
    parts.extend(f"<th>{h}</th>" for h in headers)
    parts.append("</tr>")
    for t in result.trades[:2000]:
        row = (
            t.strategy, t.symbol, t.direction, t.quantity, iso(t.entry_time_ns), t.entry_price,
            iso(t.exit_time_ns), t.exit_price, t.fees, t.pnl, t.return_pct,
        )  # fmt: skip
        parts.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
    parts.append("</table>")
    if len(result.trades) > 2000:
        parts.append("<p>(first 2000 trades; every trade is in result.json and trades.csv)</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def trades_csv(result: BacktestResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            *("strategy", "symbol", "direction", "quantity", "entry_time", "entry_price", "exit_time"),
            *("exit_price", "fees", "pnl", "return_pct"),
        ]
    )
    for t in result.trades:
        writer.writerow(
            [t.strategy, t.symbol, t.direction, t.quantity, iso(t.entry_time_ns), t.entry_price,
             iso(t.exit_time_ns), t.exit_price, t.fees, t.pnl, t.return_pct]
        )  # fmt: skip
    return buffer.getvalue()


def write_outputs(result: BacktestResult, out_dir: str | Path) -> dict[str, Path]:
    """result.json, report.html and trades.csv in `out_dir` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "result.json", "html": out / "report.html", "csv": out / "trades.csv"}
    paths["json"].write_bytes(result.to_json())
    paths["html"].write_text(html_report(result), encoding="utf-8")
    paths["csv"].write_text(trades_csv(result), encoding="utf-8")
    return paths
