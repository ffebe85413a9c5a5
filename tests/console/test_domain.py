"""Unit tests of the console's plain logic: market board, order blotter, signal log, metrics, state deltas."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aipx.money import to_pb
from aipx.v1 import admin_pb2, common_pb2, decisions_pb2, market_data_pb2, oms_pb2, orders_pb2, signals_pb2
from aipx_console.domain.activity import OrderBlotter, PositionRow
from aipx_console.domain.market import MarketBoard
from aipx_console.domain.metrics import RateTracker, figures_for, histogram_quantile, parse_exposition
from aipx_console.domain.state import ConsoleState

S = 1_000_000_000


def trade(venue: str, symbol: str, price: str, qty: str, t_ns: int) -> market_data_pb2.MarketDataEnvelope:
    return market_data_pb2.MarketDataEnvelope(
        venue=venue,
        symbol=symbol,
        exchange_time_ns=t_ns,
        trade=market_data_pb2.Trade(price=to_pb(price), quantity=to_pb(qty)),
    )


def test_trades_build_candles_per_interval_and_last_price() -> None:
    board = MarketBoard(candle_interval_s=5, max_candles=3)
    for i, price in enumerate(["100", "101.5", "99", "100.25"]):
        board.on_trade(
            "binance", "BTC-USDT", Decimal(price), Decimal("0.5"), event_ns=1000 * S + i * S, seen_ns=0
        )
    inst = board.instruments["binance:BTC-USDT"]
    assert inst.last_price == Decimal("100.25")
    assert len(inst.candles) == 1
    candle = inst.candles[0]
    assert (candle.open, candle.high, candle.low, candle.close) == (
        Decimal(100),
        Decimal("101.5"),
        Decimal(99),
        Decimal("100.25"),
    )
    assert candle.volume == Decimal("2.0") and candle.trades == 4
    # new intervals append; the history is bounded
    for k in range(1, 5):
        board.on_trade(
            "binance", "BTC-USDT", Decimal(100 + k), Decimal(1), event_ns=(1000 + 5 * k) * S, seen_ns=0
        )
    assert len(inst.candles) == 3
    assert inst.candles[-1].open_time_ns == 1020 * S
    # a late trade goes into its own candle and does not move the last price
    board.on_trade("binance", "BTC-USDT", Decimal(200), Decimal(1), event_ns=1016 * S, seen_ns=0)
    assert inst.candles[-2].high == Decimal(200)
    assert inst.last_price == Decimal(104)


def test_change_pct_is_rounded_to_two_places() -> None:
    board = MarketBoard()
    board.on_trade("bybit", "ETH-USDT", Decimal(3), Decimal(1), event_ns=S, seen_ns=S)
    board.on_trade("bybit", "ETH-USDT", Decimal(4), Decimal(1), event_ns=2 * S, seen_ns=2 * S)
    assert board.instruments["bybit:ETH-USDT"].change_pct() == Decimal("33.33")


def test_views_are_deltas_with_the_current_candle_or_full_snapshots() -> None:
    board = MarketBoard()
    board.on_trade("binance", "SOL-USDT", Decimal("150.1"), Decimal(2), event_ns=10 * S, seen_ns=10 * S)
    board.on_trade("binance", "SOL-USDT", Decimal("150.2"), Decimal(2), event_ns=20 * S, seen_ns=20 * S)
    dirty = board.take_dirty()
    assert dirty == {"binance:SOL-USDT"}
    assert board.take_dirty() == set()
    (delta,) = board.views(dirty, now_ns=21 * S, stale_after_s=15)
    assert delta["last"] == "150.2" and delta["candle"] == [20_000, "150.2", "150.2", "150.2", "150.2", "2"]
    assert "candles" not in delta and delta["stale"] is False and delta["age_s"] == 1.0
    full: Any
    (full,) = board.views(None, now_ns=40 * S, stale_after_s=15)
    assert len(full["candles"]) == 2 and full["stale"] is True


def order(order_id: str, seq: int, status: orders_pb2.OrderStatus.ValueType) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=order_id,
        account_id="acct",
        symbol="BTC-USDT",
        side=common_pb2.SIDE_BUY,
        quantity=to_pb("0.01"),
        price=to_pb("60000"),
        status=status,
        sequence=seq,
        created_time_ns=seq,
    )


def test_blotter_keeps_the_newest_state_of_each_order_and_forgets_old_finished_ones() -> None:
    blotter = OrderBlotter(history=2)
    assert blotter.on_order(order("o1", 2, orders_pb2.ORDER_STATUS_ACCEPTED))
    assert not blotter.on_order(order("o1", 1, orders_pb2.ORDER_STATUS_PENDING_NEW))  # older: ignored
    assert blotter.orders["o1"].status == orders_pb2.ORDER_STATUS_ACCEPTED
    for i in range(2, 6):
        blotter.on_order(order(f"o{i}", 1, orders_pb2.ORDER_STATUS_CANCELED))
    assert "o1" in blotter.orders  # open orders are never forgotten
    assert set(blotter.orders) == {"o1", "o4", "o5"}
    rows, removed = blotter.order_views({"o1", "o2", "o5"})
    assert [r["order_id"] for r in rows] == ["o1", "o5"] and removed == ["o2"]
    assert rows[0]["status"] == "ACCEPTED" and rows[0]["side"] == "BUY" and rows[0]["price"] == "60000"


def test_position_pnl_is_exact() -> None:
    row = PositionRow("acct", "BTC-USDT", Decimal("-0.003"), Decimal("60000.10"), Decimal("1.5"), 1)
    assert row.unrealized(Decimal("59000.05")) == Decimal("3.000150")
    view = row.view(Decimal("59000.05"))
    assert view["unrealized_pnl"] == "3.00015" and view["realized_pnl"] == "1.5"
    assert row.unrealized(None) is None


def test_order_event_updates_order_fill_and_position() -> None:
    state = ConsoleState()
    event = orders_pb2.OrderEvent(
        type=orders_pb2.ORDER_EVENT_TYPE_FILLED,
        order=order("o9", 3, orders_pb2.ORDER_STATUS_FILLED),
        fill=orders_pb2.Fill(
            fill_id="f1", order_id="o9", account_id="acct", symbol="BTC-USDT", quantity=to_pb("0.01"),
            price=to_pb("60000"),
        ),
        position=orders_pb2.Position(
            account_id="acct", symbol="BTC-USDT", quantity=to_pb("0.01"), average_price=to_pb("60000"),
            realized_pnl=to_pb("0"), updated_time_ns=5,
        ),
    )  # fmt: skip
    state.on_order_event(event)
    state.on_market_data(trade("binance", "BTC-USDT", "60100", "1", 7 * S), 7 * S)
    delta: Any = state.delta(8 * S)
    assert delta is not None
    assert [o["status"] for o in delta["orders"]] == ["FILLED"]
    assert [f["fill_id"] for f in delta["fills"]] == ["f1"]
    (position,) = delta["positions"]
    assert position["mark"] == "60100" and position["unrealized_pnl"] == "1.00"
    assert state.delta(9 * S) is None  # nothing changed since


def test_decisions_carry_votes_and_their_signals_reasons() -> None:
    state = ConsoleState()
    state.on_signal(
        signals_pb2.TradingSignal(
            signal_id="s1", strategy_id="rsi", symbol="ETH-USDT", direction=signals_pb2.SIGNAL_DIRECTION_LONG,
            reasons=["RSI 28 < 30"], price=to_pb("3000"),
        )
    )  # fmt: skip
    state.on_decision(
        decisions_pb2.Decision(
            decision_id="d1", signal_id="s1", symbol="ETH-USDT", verdict=decisions_pb2.VERDICT_APPROVE,
            votes=[
                decisions_pb2.AnalystVote(
                    analyst="trend", vote=decisions_pb2.VOTE_LONG, confidence=0.8, rationale="up"
                )
            ],
        )
    )  # fmt: skip
    delta: Any = state.delta(S)
    assert delta is not None
    (decision,) = delta["decisions"]
    assert decision["verdict"] == "APPROVE" and decision["signal_reasons"] == ["RSI 28 < 30"]
    assert decision["votes"] == [{"analyst": "trend", "vote": "LONG", "confidence": 0.8, "rationale": "up"}]
    assert delta["signals"][0]["direction"] == "LONG"


def test_components_push_only_changes_and_keep_their_since_time() -> None:
    state = ConsoleState()
    state.set_component("kafka", False, "down", 5 * S)
    delta: Any = state.delta(6 * S)
    assert delta["components"][0]["up"] is False
    state.set_component("kafka", False, "down", 7 * S)
    assert state.delta(8 * S) is None
    state.set_component("kafka", True, "ok", 9 * S)
    delta = state.delta(10 * S)
    assert delta["components"][0] == {
        "name": "kafka",
        "up": True,
        "message": "ok",
        "since_ms": 9000,
    }


def test_accounts_show_the_trading_state() -> None:
    state = ConsoleState()
    state.on_account(
        admin_pb2.AccountSummary(
            account_id="demo", trading_state=admin_pb2.TRADING_STATE_HALTED, trading_state_reason="ops"
        )
    )
    snapshot = state.snapshot(S)
    assert snapshot["accounts"] == [
        {"account_id": "demo", "name": "", "trading_state": "HALTED", "reason": "ops"}
    ]


def test_many_symbols_coalesce_into_one_delta_with_one_row_each() -> None:
    state = ConsoleState()
    for n in range(50):
        for i in range(500):
            state.on_market_data(trade("sim", f"SYM{i}-USDT", str(100 + n), "1", (n + 1) * S), (n + 1) * S)
    delta: Any = state.delta(60 * S)
    assert delta is not None and len(delta["markets"]) == 500
    assert all(m["last"] == "149" for m in delta["markets"])


METRICS = """\
# TYPE aipx_ingestion_messages_in counter
aipx_ingestion_messages_in_total{venue="binance",type="trade"} 100.0
aipx_ingestion_messages_in_total{venue="binance",type="depth"} 50.0
# TYPE aipx_ingestion_gaps counter
aipx_ingestion_gaps_total{venue="binance",stream="btcusdt@depth"} 2.0
# TYPE aipx_ingestion_resyncs counter
aipx_ingestion_resyncs_total{venue="binance",stream="btcusdt@depth"} 1.0
# TYPE aipx_ingestion_stale_streams gauge
aipx_ingestion_stale_streams{venue="binance"} 1.0
# TYPE aipx_ingestion_dropped counter
aipx_ingestion_dropped_total{reason="buffer"} 3.0
"""


def test_ingestion_figures_give_rates_per_venue_and_stream() -> None:
    rates = RateTracker()
    first: Any = figures_for(parse_exposition(METRICS), rates, 10.0)
    assert first["kind"] == "ingestion" and first["dropped"] == 3.0
    venue: Any
    (venue,) = first["venues"]
    assert venue["messages"] == 150.0 and venue["rate"] is None and venue["stale_streams"] == 1.0
    later = METRICS.replace("} 100.0", "} 250.0").replace(
        'stream="btcusdt@depth"} 2.0', 'stream="btcusdt@depth"} 4.0'
    )
    second: Any = figures_for(parse_exposition(later), rates, 20.0)
    (venue,) = second["venues"]
    assert venue["rate"] == 15.0
    assert venue["streams"] == [
        {"stream": "btcusdt@depth", "gaps": 4.0, "gaps_per_min": 12.0, "resyncs": 1.0, "resyncs_per_min": 0.0}
    ]


def test_oms_figures_and_p99() -> None:
    text = """\
# TYPE aipx_oms_requests counter
aipx_oms_requests_total{method="SubmitOrder",code="OK"} 98.0
aipx_oms_requests_total{method="SubmitOrder",code="UNAVAILABLE"} 2.0
# TYPE aipx_oms_request_seconds histogram
aipx_oms_request_seconds_bucket{method="SubmitOrder",code="OK",le="0.01"} 90.0
aipx_oms_request_seconds_bucket{method="SubmitOrder",code="OK",le="0.1"} 99.0
aipx_oms_request_seconds_bucket{method="SubmitOrder",code="OK",le="+Inf"} 100.0
aipx_oms_request_seconds_count{method="SubmitOrder",code="OK"} 100.0
aipx_oms_request_seconds_sum{method="SubmitOrder",code="OK"} 1.0
# TYPE aipx_oms_outbox_lag_events gauge
aipx_oms_outbox_lag_events 7.0
# TYPE aipx_oms_outbox_lag_seconds gauge
aipx_oms_outbox_lag_seconds 1.25
"""
    samples = parse_exposition(text)
    assert histogram_quantile(samples, "aipx_oms_request_seconds", 0.99) == 0.1
    figures = figures_for(samples, RateTracker(), 1.0)
    assert (
        figures["kind"] == "oms" and figures["outbox_lag_events"] == 7.0 and figures["outbox_lag_s"] == 1.25
    )
    assert figures["requests"] == 100.0 and figures["p99_s"] == 0.1


def test_runner_figures_count_dead_letters() -> None:
    text = """\
# TYPE aipx_runner_dead_lettered counter
aipx_runner_dead_lettered_total{function="strategy",topic="market-data-raw"} 4.0
# TYPE aipx_runner_invocations counter
aipx_runner_invocations_total{function="strategy",topic="market-data-raw",outcome="ok"} 10.0
aipx_runner_invocations_total{function="strategy",topic="market-data-raw",outcome="partial"} 1.0
"""
    figures = figures_for(parse_exposition(text), RateTracker(), 1.0)
    assert figures == {"kind": "runner", "dead_lettered": 4.0, "records": 0, "failed_invocations": 1.0}


def test_a_counter_reset_counts_from_zero() -> None:
    rates = RateTracker()
    assert rates.rate("x", 100, 1.0) is None
    assert rates.rate("x", 10, 2.0) == 10.0


def test_account_snapshots_and_admin_summaries_merge_into_one_row() -> None:
    state = ConsoleState()
    snapshot = oms_pb2.AccountSnapshot(
        account_id="demo",
        trading_state=admin_pb2.TRADING_STATE_ACTIVE,
        valuation_asset="USDT",
        equity=to_pb("1000123.45"),
        realized_pnl=to_pb("12.5"),
        unrealized_pnl=to_pb("-3.25"),
        balances=[
            oms_pb2.AssetBalance(
                asset="USDT", total=to_pb("1000000"), free=to_pb("999000"), locked=to_pb("1000")
            )
        ],
        positions=[
            orders_pb2.Position(
                account_id="demo", symbol="BTC-USDT", quantity=to_pb("0.5"), average_price=to_pb("60000"),
                updated_time_ns=1,
            )
        ],
    )  # fmt: skip
    state.on_account_snapshot(snapshot)
    halted = admin_pb2.AccountSummary(
        account_id="demo", trading_state=admin_pb2.TRADING_STATE_HALTED, trading_state_reason="ops"
    )
    state.on_account(halted)
    delta: Any = state.delta(S)
    (account,) = delta["accounts"]
    assert account["trading_state"] == "HALTED" and account["reason"] == "ops"
    assert account["equity"] == "1000123.45" and account["unrealized_pnl"] == "-3.25"
    assert account["balances"] == [{"asset": "USDT", "total": "1000000", "free": "999000", "locked": "1000"}]
    assert [p["symbol"] for p in delta["positions"]] == ["BTC-USDT"]
