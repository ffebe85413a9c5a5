"""`aipx-backtest` (and `./aipx backtest`): run a backtest, a grid search or a walk-forward from the shell.

aipx-backtest --demo                # generated data, every strategy, report in ./backtest-out
aipx-backtest --csv klines.csv --symbol BTC-USDT --strategies ema_cross,bollinger --out out/
aipx-backtest --lake s3://aipx-data-lake --symbols BTC-USDT,ETH-USDT --start 2026-12-01 --end 2026-12-02
aipx-backtest --jsonl recording.jsonl --grid '{"ema_cross": {"fast": [5, 9], "slow": [21, 30]}}'
aipx-backtest --demo --walk-forward 4 --grid '{"bollinger": {"period": [14, 20], "k": [1.5, 2.0]}}'
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from aipx_backtest.config import BacktestConfig
from aipx_backtest.data import DataError, Dataset, demo_dataset, load_csv, load_jsonl, load_lake, parse_time
from aipx_backtest.optimize import folds_table, grid_search, walk_forward
from aipx_backtest.report import console_table, write_outputs
from aipx_backtest.result import run_backtest


def _list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not finite")
    return value


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aipx-backtest",
        description="Replay market data through AIPX's production strategies, ensemble, risk and fill model.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_argument_group("data (one of)")
    source.add_argument(
        "--demo", action="store_true", help="a generated deterministic dataset (nothing recorded needed)"
    )
    source.add_argument(
        "--lake", metavar="ROOT", help="the Parquet lake: a local directory or s3://bucket[/prefix]"
    )
    source.add_argument(
        "--jsonl", metavar="FILE", help="a recording in the exchange simulator's JSON-lines format"
    )
    source.add_argument("--csv", metavar="FILE", help="a CSV of trades or klines")
    source.add_argument("--symbol", help="the symbol of a CSV without a symbol column")
    source.add_argument("--symbols", type=_list, help="only these symbols (comma-separated, BASE-QUOTE)")
    source.add_argument("--start", help="from this time (ISO-8601 UTC or unix s/ms/ns), inclusive")
    source.add_argument("--end", help="to this time, exclusive")
    source.add_argument("--demo-hours", type=float, default=48.0, help="hours of demo data (default 48)")
    run = p.add_argument_group("what runs")
    run.add_argument("--strategies", type=_list, help="strategy ids (default: every registered strategy)")
    run.add_argument(
        "--params", type=_json, default={}, help='per-strategy parameters, JSON: {"ema_cross": {"fast": 5}}'
    )
    run.add_argument("--intervals", type=_list, default=("1m",), help="candle intervals (default 1m)")
    run.add_argument("--balance", type=_decimal, default=Decimal("10000"), help="starting cash per strategy")
    run.add_argument(
        "--notional", type=_decimal, default=Decimal("1000"), help="order size in quote currency"
    )
    run.add_argument(
        "--quantity", action="append", default=[], metavar="SYMBOL=QTY", help="fixed order quantity"
    )
    run.add_argument(
        "--maker-fee", type=_decimal, default=Decimal("0.0002"), help="maker fee rate (0.0002 = 2 bps)"
    )
    run.add_argument("--taker-fee", type=_decimal, default=Decimal("0.0004"), help="taker fee rate")
    run.add_argument(
        "--slippage-bps", type=_decimal, default=Decimal("0"), help="taker slippage in basis points"
    )
    run.add_argument("--long-only", action="store_true", help="SHORT signals only close longs")
    run.add_argument(
        "--protective", action="store_true", help="place each signal's stop-loss and take-profit orders"
    )
    run.add_argument(
        "--ensemble", action="store_true", help="signals must pass the cognitive ensemble (offline analysts)"
    )
    run.add_argument(
        "--config", type=Path, help="a BacktestConfig as JSON (command-line options are ignored)"
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--grid", type=_json, help='parameter grid, JSON: {"ema_cross": {"fast": [5, 9]}}')
    opt.add_argument("--objective", default="sharpe", help="metric to maximise (default sharpe)")
    opt.add_argument("--walk-forward", type=int, metavar="FOLDS", help="walk-forward with this many folds")
    opt.add_argument("--in-sample-ratio", type=int, default=3, help="in-sample length / out-of-sample length")
    opt.add_argument("--workers", type=int, help="worker processes (default: CPUs, at most 4)")
    out = p.add_argument_group("output")
    out.add_argument(
        "--out", type=Path, default=Path("backtest-out"), help="output directory (default ./backtest-out)"
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def load(args: argparse.Namespace) -> Dataset:
    sources = [name for name in ("demo", "lake", "jsonl", "csv") if getattr(args, name)]
    if len(sources) != 1:
        raise DataError("give exactly one data source: --demo, --lake, --jsonl or --csv")
    start = parse_time(args.start, "--start") if args.start else None
    end = parse_time(args.end, "--end") if args.end else None
    if args.demo:
        data = demo_dataset(hours=args.demo_hours)
    elif args.lake:
        data = load_lake(args.lake, symbols=args.symbols, start_ns=start, end_ns=end)
    elif args.jsonl:
        data = load_jsonl(args.jsonl)
    else:
        data = load_csv(args.csv, symbol=args.symbol)
    data = data.select(symbols=args.symbols, start_ns=start, end_ns=end)
    if not data.events:
        raise DataError("no market data matches the symbols and time range")
    return data


def config_of(args: argparse.Namespace) -> BacktestConfig:
    if args.config:
        return BacktestConfig.model_validate_json(args.config.read_text())
    quantities = {}
    for item in args.quantity:
        symbol, sep, qty = item.partition("=")
        if not sep:
            raise ValueError(f"--quantity {item!r}: expected SYMBOL=QTY")
        quantities[symbol] = _decimal(qty)
    fields: dict[str, Any] = {
        "params": args.params,
        "intervals": args.intervals,
        "balance": args.balance,
        "notional": args.notional,
        "quantities": quantities,
        "maker_fee_rate": args.maker_fee,
        "taker_fee_rate": args.taker_fee,
        "slippage_bps": args.slippage_bps,
        "allow_short": not args.long_only,
        "protective": args.protective,
        "ensemble": args.ensemble,
    }
    if args.strategies:
        fields["strategies"] = args.strategies
    return BacktestConfig(**fields)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except (DataError, ValueError, ValidationError, OSError) as exc:
        print(f"aipx-backtest: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    config = config_of(args)  # before the data: a typo fails at once
    data = load(args)
    print(f"{len(data.events)} events ({data.trades} trades) of {', '.join(data.symbols)}", file=sys.stderr)
    if args.walk_forward:
        if not args.grid:
            print("aipx-backtest: --walk-forward needs --grid", file=sys.stderr)
            return 2
        folds = walk_forward(
            data, config, args.grid, folds=args.walk_forward, in_sample_ratio=args.in_sample_ratio,
            objective=args.objective, workers=args.workers, progress=not args.no_progress,
        )  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        body = json.dumps([_plain(f) for f in folds], sort_keys=True, indent=1, default=str)
        (args.out / "walk_forward.json").write_text(body + "\n")
        print(folds_table(folds))
        print(f"wrote {args.out / 'walk_forward.json'}")
        return 0
    if args.grid:
        points = grid_search(
            data,
            config,
            args.grid,
            objective=args.objective,
            workers=args.workers,
            progress=not args.no_progress,
        )
        args.out.mkdir(parents=True, exist_ok=True)
        body = json.dumps([_plain(p) for p in points], sort_keys=True, indent=1, default=str)
        (args.out / "grid.json").write_text(body + "\n")
        for rank, point in enumerate(points[:10], 1):
            print(f"{rank:>3}. {args.objective} {point.score}  {json.dumps(point.params, sort_keys=True)}")
        print(f"wrote {args.out / 'grid.json'} ({len(points)} runs)")
        return 0
    with tqdm(total=len(data.events), unit="ev", disable=args.no_progress, leave=False) as bar:
        seen = 0

        def progress(index: int) -> None:
            nonlocal seen
            bar.update(index - seen)
            seen = index

        result = run_backtest(data, config, on_progress=progress)
    paths = write_outputs(result, args.out)
    print(console_table(result))
    print(f"wrote {paths['json']}, {paths['html']}, {paths['csv']}")
    return 0


def _plain(value: Any) -> Any:
    import dataclasses

    return (
        dataclasses.asdict(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type)
        else value
    )


if __name__ == "__main__":
    raise SystemExit(main())
