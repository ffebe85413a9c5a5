"""Market data for a backtest: the Parquet lake, the simulator's JSON lines, CSV trades or klines, or a
generated demo set. Every source becomes what the live functions consume: `aipx.v1.MarketDataEnvelope`s
(trades and quotes), ordered by event time (ties keep the input's order), so the replay is deterministic.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aipx.money import InvalidDecimalError, format_decimal, parse_decimal
from aipx.settings import S3Settings
from aipx.topics import MARKET_DATA_RAW
from aipx.v1.common_pb2 import Decimal as PbDecimal
from aipx.v1.market_data_pb2 import MarketDataEnvelope, Quote, Trade

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")


class DataError(ValueError):
    """Input data that cannot be used (names the file, line or column)."""


@dataclass(slots=True)
class Dataset:
    """Trades and quotes of one or more symbols, in event-time order."""

    events: list[MarketDataEnvelope]

    @property
    def symbols(self) -> list[str]:
        return sorted({e.symbol for e in self.events})

    @property
    def start_ns(self) -> int:
        return event_time(self.events[0]) if self.events else 0

    @property
    def end_ns(self) -> int:
        return event_time(self.events[-1]) if self.events else 0

    @property
    def trades(self) -> int:
        return sum(1 for e in self.events if e.HasField("trade"))

    def select(
        self, *, symbols: Iterable[str] | None = None, start_ns: int | None = None, end_ns: int | None = None
    ) -> Dataset:
        """The events of `symbols` with start_ns <= time < end_ns."""
        wanted = None if symbols is None else set(symbols)
        return Dataset(
            [
                e
                for e in self.events
                if (wanted is None or e.symbol in wanted)
                and (start_ns is None or event_time(e) >= start_ns)
                and (end_ns is None or event_time(e) < end_ns)
            ]
        )

    def to_bytes(self) -> list[bytes]:
        """Serialized events (what worker processes receive)."""
        return [e.SerializeToString() for e in self.events]

    @classmethod
    def from_bytes(cls, raw: Sequence[bytes]) -> Dataset:
        return cls([MarketDataEnvelope.FromString(b) for b in raw])


def event_time(envelope: MarketDataEnvelope) -> int:
    return envelope.exchange_time_ns or envelope.ingest_time_ns


def ordered(events: Iterable[MarketDataEnvelope]) -> Dataset:
    """Events sorted by event time; equal times keep their input order (a stable sort)."""
    return Dataset(sorted(events, key=event_time))


def _dec(value: Any, where: str) -> str:
    try:
        d = value if isinstance(value, Decimal) else parse_decimal(str(value).strip(), field=where)
    except InvalidDecimalError as exc:
        raise DataError(str(exc)) from None
    return "0" if d.is_zero() else format_decimal(d.normalize())


def trade_envelope(
    symbol: str, time_ns: int, price: Any, quantity: Any, *, venue: str = "backtest", trade_id: str = ""
) -> MarketDataEnvelope:
    """A trade as the ingestion service would publish it (exact decimal strings)."""
    return MarketDataEnvelope(
        venue=venue,
        symbol=symbol,
        venue_symbol=symbol.replace("-", ""),
        exchange_time_ns=time_ns,
        ingest_time_ns=time_ns,
        trade=Trade(
            trade_id=trade_id,
            price=PbDecimal(value=_dec(price, "price")),
            quantity=PbDecimal(value=_dec(quantity, "quantity")),
        ),
    )


def quote_envelope(
    symbol: str, time_ns: int, *, bid: Any, bid_size: Any, ask: Any, ask_size: Any, venue: str = "backtest"
) -> MarketDataEnvelope:
    return MarketDataEnvelope(
        venue=venue,
        symbol=symbol,
        venue_symbol=symbol.replace("-", ""),
        exchange_time_ns=time_ns,
        ingest_time_ns=time_ns,
        quote=Quote(
            bid_price=PbDecimal(value=_dec(bid, "bid")),
            bid_size=PbDecimal(value=_dec(bid_size, "bid_size")),
            ask_price=PbDecimal(value=_dec(ask, "ask")),
            ask_size=PbDecimal(value=_dec(ask_size, "ask_size")),
        ),
    )


# --- time ----------------------------------------------------------------------------------------------


def parse_time(value: str, where: str = "time") -> int:
    """Unix ns from an ISO-8601 time (UTC unless it says otherwise) or a unix number: seconds, ms, us or ns
    told apart by magnitude (a 2001-2286 date in each unit)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        number = int(text)
        for limit, scale in ((10**11, NS_PER_S), (10**14, NS_PER_MS), (10**17, 1_000)):
            if abs(number) < limit:
                return number * scale
        return number
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{where}: {value!r} is neither an ISO-8601 time nor a unix timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS_PER_S + moment.microsecond * 1_000


def iso(time_ns: int) -> str:
    """Unix ns -> '2024-01-02T03:04:05.678Z' (milliseconds)."""
    moment = datetime.fromtimestamp(time_ns // NS_PER_S, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{time_ns % NS_PER_S // NS_PER_MS:03d}Z"


def canonical_symbol(venue_symbol: str) -> str:
    """'BTCUSDT' -> 'BTC-USDT' (a symbol already 'BASE-QUOTE' is kept)."""
    if "-" in venue_symbol:
        return venue_symbol.upper()
    upper = venue_symbol.upper()
    for quote in QUOTE_ASSETS:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[: -len(quote)]}-{quote}"
    raise DataError(f"cannot tell base and quote apart in {venue_symbol!r}; use 'BASE-QUOTE'")


# --- CSV -----------------------------------------------------------------------------------------------

_TIME_COLUMNS = ("time", "timestamp", "ts", "open_time", "date", "datetime")
_KLINE_COLUMNS = {"open", "high", "low", "close"}


def load_csv(path: str | Path, *, symbol: str | None = None) -> Dataset:
    """A CSV of trades (time, [symbol], price, quantity|qty|size|amount) or klines (open_time|time,
    [symbol], open, high, low, close, [volume], [close_time]); header names are case-insensitive.

    Klines become four trades each (open, then the nearer extreme, the other extreme, close, at the start,
    1/3, 2/3 and the end of the bar, a quarter of the volume each), so the candles the strategy builds
    from them have exactly the kline's OHLC when the bar matches the strategy's interval."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise DataError(f"{path}: empty CSV")
        columns = {name.strip().lower(): name for name in reader.fieldnames}
        rows = list(reader)
    time_col = next((columns[c] for c in _TIME_COLUMNS if c in columns), None)
    if time_col is None:
        raise DataError(f"{path}: no time column (one of {', '.join(_TIME_COLUMNS)})")
    symbol_col = columns.get("symbol")
    if symbol_col is None and symbol is None:
        raise DataError(f"{path}: no symbol column; pass symbol=")

    def symbol_of(row: dict[str, str], line: int) -> str:
        if symbol_col is not None and row.get(symbol_col):
            return canonical_symbol(row[symbol_col].strip())
        if symbol is None:
            raise DataError(f"{path}:{line}: empty symbol")
        return symbol

    events: list[MarketDataEnvelope] = []
    if set(columns) >= _KLINE_COLUMNS:
        times = [parse_time(row[time_col], f"{path}:{i + 2}") for i, row in enumerate(rows)]
        close_col = columns.get("close_time")
        step = min((b - a for a, b in itertools.pairwise(times) if b > a), default=60 * NS_PER_S)
        volume_col = columns.get("volume")
        for i, row in enumerate(rows):
            line = f"{path}:{i + 2}"
            start = times[i]
            end = parse_time(row[close_col], line) + 1 if close_col and row.get(close_col) else start + step
            o, h, low, c = (_dec(row[columns[k]], f"{line} {k}") for k in ("open", "high", "low", "close"))
            if not (
                Decimal(low) <= min(Decimal(o), Decimal(c)) and Decimal(h) >= max(Decimal(o), Decimal(c))
            ):
                raise DataError(f"{line}: high/low do not contain open/close")
            volume = Decimal(_dec(row[volume_col], f"{line} volume")) if volume_col else Decimal(4)
            quarter = volume / 4
            path_prices = (o, low, h, c) if Decimal(c) >= Decimal(o) else (o, h, low, c)
            span = end - start - 1
            sym = symbol_of(row, i + 2)
            for j, price in enumerate(path_prices):
                events.append(trade_envelope(sym, start + span * j // 3, price, quarter, trade_id=f"{i}.{j}"))
        return ordered(events)
    quantity_col = next(
        (columns[c] for c in ("quantity", "qty", "size", "amount", "volume") if c in columns), None
    )
    price_col = columns.get("price")
    if price_col is None or quantity_col is None:
        raise DataError(f"{path}: expected trades (price, quantity) or klines (open, high, low, close)")
    for i, row in enumerate(rows):
        line = f"{path}:{i + 2}"
        time_ns = parse_time(row[time_col], line)
        events.append(
            trade_envelope(symbol_of(row, i + 2), time_ns, row[price_col], row[quantity_col], trade_id=str(i))
        )
    return ordered(events)


# --- the simulator's JSON lines ------------------------------------------------------------------------


def load_jsonl(path: str | Path) -> Dataset:
    """A recording in the simulator's replay format ({"venue", "stream", "frame"} per line): Binance trade,
    aggTrade and bookTicker frames and Bybit publicTrade/orderbook.1 frames; anything else is skipped."""
    path = Path(path)
    events: list[MarketDataEnvelope] = []
    last_time: dict[str, int] = {}
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                frame = entry["frame"]
                venue = str(entry.get("venue", "binance"))
                if isinstance(frame, str):
                    frame = json.loads(frame)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{number}: not a replay line ({exc})") from None
            if not isinstance(frame, dict):
                continue
            try:
                events.extend(_frame_events(venue, frame, last_time))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path}:{number}: bad {venue} frame ({type(exc).__name__}: {exc})") from None
    return ordered(events)


def _frame_events(
    venue: str, frame: dict[str, Any], last_time: dict[str, int]
) -> Iterator[MarketDataEnvelope]:
    if "topic" in frame:  # Bybit v5
        topic = str(frame["topic"])
        data = frame.get("data")
        if topic.startswith("publicTrade.") and isinstance(data, list):
            for t in data:
                symbol = canonical_symbol(str(t["s"]))
                time_ns = int(t["T"]) * NS_PER_MS
                last_time[symbol] = time_ns
                yield trade_envelope(
                    symbol, time_ns, t["p"], t["v"], venue=venue, trade_id=str(t.get("i", ""))
                )
        elif topic.startswith("orderbook.1.") and isinstance(data, dict) and data.get("b") and data.get("a"):
            symbol = canonical_symbol(str(data["s"]))
            time_ns = int(frame.get("ts", 0)) * NS_PER_MS or last_time.get(symbol, 0)
            (bid, bid_size), (ask, ask_size) = data["b"][0], data["a"][0]
            yield quote_envelope(
                symbol, time_ns, bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size, venue=venue
            )
        return
    data = frame.get("data", frame)
    if not isinstance(data, dict):
        return
    event = data.get("e")
    if event in ("trade", "aggTrade"):
        symbol = canonical_symbol(str(data["s"]))
        time_ns = int(data["T"]) * NS_PER_MS
        last_time[symbol] = time_ns
        yield trade_envelope(
            symbol, time_ns, data["p"], data["q"], venue=venue, trade_id=str(data.get("t", ""))
        )
    elif (event == "bookTicker" or event is None) and {"b", "B", "a", "A", "s"} <= set(data):
        symbol = canonical_symbol(str(data["s"]))
        # Spot bookTicker carries no time: it belongs to the moment of the symbol's last trade.
        time_ns = int(data["E"]) * NS_PER_MS if "E" in data else last_time.get(symbol, 0)
        yield quote_envelope(
            symbol, time_ns, bid=data["b"], bid_size=data["B"], ask=data["a"], ask_size=data["A"], venue=venue
        )


# --- the Parquet lake ----------------------------------------------------------------------------------


def load_lake(
    root: str,
    *,
    symbols: Sequence[str] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    topic: str = MARKET_DATA_RAW,
    s3: S3Settings | None = None,
) -> Dataset:
    """`market-data-raw` from the lake written by the recorder: `root` is a local directory or
    's3://bucket[/prefix]' (S3 endpoint and credentials from AIPX_S3_*). Directories are pruned by date and
    hour, rows by symbol and time; trades and quotes are kept. `s3`: endpoint and credentials (default: the
    AIPX_S3_* environment)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from aipx_recorder.reader import PARTITIONING, lake_filesystem

    if root.startswith("s3://"):
        filesystem: Any = lake_filesystem(s3)
        base = root.removeprefix("s3://").rstrip("/")
    else:
        filesystem = None
        base = str(Path(root).resolve())
    location = f"{base}/topic={topic}"
    try:
        dataset = ds.dataset(location, filesystem=filesystem, format="parquet", partitioning=PARTITIONING)
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"no {topic} data in the lake at {root}: {exc}") from None
    condition: Any = None

    def both(expr: Any) -> None:
        nonlocal condition
        condition = expr if condition is None else condition & expr

    if start_ns is not None:
        both(ds.field("date") >= datetime.fromtimestamp(start_ns // NS_PER_S, tz=UTC).strftime("%Y-%m-%d"))
    if end_ns is not None:
        both(ds.field("date") <= datetime.fromtimestamp(end_ns // NS_PER_S, tz=UTC).strftime("%Y-%m-%d"))
    if symbols:
        both(ds.field("symbol").isin(list(symbols)))
    columns = [
        "venue",
        "symbol",
        "exchange_time_ns",
        "ingest_time_ns",
        "trade",
        "quote",
        "_partition",
        "_offset",
    ]
    table = dataset.to_table(columns=columns, filter=condition)
    time = pc.if_else(
        pc.equal(table["exchange_time_ns"], 0), table["ingest_time_ns"], table["exchange_time_ns"]
    )
    table = table.append_column("_time", time)
    if start_ns is not None:
        table = table.filter(pc.greater_equal(table["_time"], start_ns))
    if end_ns is not None:
        table = table.filter(pc.less(table["_time"], end_ns))
    table = table.sort_by([("_time", "ascending"), ("_partition", "ascending"), ("_offset", "ascending")])
    events: list[MarketDataEnvelope] = []
    for row in table.to_pylist():
        t, q = row["trade"], row["quote"]
        if t is not None and t["price"] is not None:
            events.append(
                trade_envelope(
                    row["symbol"], row["_time"], t["price"], t["quantity"] or 0, venue=row["venue"]
                )
            )
        elif q is not None and q["bid_price"] is not None and q["ask_price"] is not None:
            events.append(
                quote_envelope(
                    row["symbol"],
                    row["_time"],
                    bid=q["bid_price"],
                    bid_size=q["bid_size"] or 0,
                    ask=q["ask_price"],
                    ask_size=q["ask_size"] or 0,
                    venue=row["venue"],
                )
            )
    return ordered(events)


# --- the demo set --------------------------------------------------------------------------------------

DEMO_SYMBOLS = ("XRP-USDT", "SOL-USDT", "BNB-USDT")
DEMO_START_NS = 1_735_689_600 * NS_PER_S  # 2025-01-01T00:00Z


def demo_dataset(
    symbols: Sequence[str] = DEMO_SYMBOLS,
    *,
    hours: float = 24.0,
    trades_per_minute: int = 30,
    seed: int = 7,
    start_ns: int = DEMO_START_NS,
) -> Dataset:
    """A deterministic market from the exchange simulator's generator (`aipx_exchange_sim.market`): its
    random-walk book and trades, `trades_per_minute` trades per symbol at even times, a quote (the book's
    touch) before each trade. The same arguments give the same events on every machine."""
    events = demo_events(
        symbols, hours=hours, trades_per_minute=trades_per_minute, seed=seed, start_ns=start_ns
    )
    return Dataset(list(events))


def demo_events(
    symbols: Sequence[str] = DEMO_SYMBOLS,
    *,
    hours: float = 24.0,
    trades_per_minute: int = 30,
    seed: int = 7,
    start_ns: int = DEMO_START_NS,
) -> Iterator[MarketDataEnvelope]:
    """The demo market as a stream, in time order (for runs too long to hold in memory)."""
    from aipx_exchange_sim.market import SymbolMarket, price_text, size_text

    rng = random.Random(seed)
    markets = []
    for symbol in symbols:
        base, _, quote = symbol.partition("-")
        markets.append((symbol, SymbolMarket.create(base, quote, rng)))
    count = int(hours * 60 * trades_per_minute)
    step = 60 * NS_PER_S // trades_per_minute
    for i in range(count):
        time_ns = start_ns + i * step
        for symbol, market in markets:
            # Several book changes per trade: the simulator's default mix moves the mid between prints.
            for _ in range(6):
                market.step_book()
            bid, ask = market.best_bid, market.best_ask
            yield quote_envelope(
                symbol,
                time_ns,
                bid=price_text(bid),
                bid_size=size_text(market.bids.get(bid, 1)),
                ask=price_text(ask),
                ask_size=size_text(market.asks.get(ask, 1)),
            )
            trade, _ = market.step_trade(time_ns // NS_PER_MS)
            yield trade_envelope(symbol, time_ns, price_text(trade.price), size_text(trade.lots))
