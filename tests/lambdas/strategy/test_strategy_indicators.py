"""Indicator values against TA-Lib (the reference implementation) on the same synthetic OHLC data.

Every incremental indicator is fed bar by bar and compared, bar for bar, with TA-Lib's vectorised output.
SuperTrend and Ichimoku are not TA-Lib functions: their building blocks are (ATR, MIDPRICE), and the
SuperTrend band recursion is checked against TradingView's published definition written out below.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import talib
from aipx_strategy.domain.indicators import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    BollingerBands,
    Ichimoku,
    Stochastic,
    SuperTrend,
)
from talib._ta_lib import MA_Type

N = 600


@pytest.fixture(scope="module")
def ohlc() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded random walk around 30,000 with realistic wicks."""
    rng = np.random.default_rng(20240601)
    close = 30_000 + np.cumsum(rng.normal(0, 25, N))
    spread = np.abs(rng.normal(0, 15, N))
    high = close + spread + np.abs(rng.normal(0, 5, N))
    low = close - spread - np.abs(rng.normal(0, 5, N))
    return high, low, close


def assert_series(ours: list[float | None], ref: np.ndarray, *, rel: float = 1e-9, start: int = 0) -> None:
    """None exactly where TA-Lib has NaN (warm-up), equal values elsewhere."""
    assert len(ours) == len(ref)
    compared = 0
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        if i < start:
            continue
        if math.isnan(b):
            assert a is None, f"bar {i}: expected warm-up (None), got {a}"
        else:
            assert a is not None, f"bar {i}: expected {b}, got None"
            assert a == pytest.approx(b, rel=rel, abs=1e-9), f"bar {i}"
            compared += 1
    assert compared > N // 2


def roundtrip(indicator: object) -> None:
    """dump() -> JSON -> load() keeps the state exactly (what Redis does between invocations)."""
    data = json.loads(json.dumps(indicator.dump()))  # type: ignore[attr-defined]
    indicator.load(data)  # type: ignore[attr-defined]


def test_sma_ema_match_talib(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, _, close = ohlc
    for period in (5, 20, 50):
        sma, ema = SMA(period), EMA(period)
        ours_sma, ours_ema = [], []
        for i, c in enumerate(close):
            ours_sma.append(sma.update(float(c)))
            ours_ema.append(ema.update(float(c)))
            if i % 97 == 0:
                roundtrip(sma)
                roundtrip(ema)
        assert_series(ours_sma, talib.SMA(close, period))
        assert_series(ours_ema, talib.EMA(close, period))


def test_rsi_matches_talib(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, _, close = ohlc
    for period in (6, 14):
        rsi = RSI(period)
        ours = []
        for i, c in enumerate(close):
            ours.append(rsi.update(float(c)))
            if i % 50 == 0:
                roundtrip(rsi)
        assert_series(ours, talib.RSI(close, period))


def test_atr_matches_talib(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    high, low, close = ohlc
    atr = ATR(14)
    ours = []
    for i, (h, lo, c) in enumerate(zip(high, low, close, strict=True)):
        ours.append(atr.update(float(h), float(lo), float(c)))
        if i % 41 == 0:
            roundtrip(atr)
    assert_series(ours, talib.ATR(high, low, close, 14))


def test_macd_matches_talib(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Line and signal equal TA-Lib's EMAs composed; TA-Lib's MACD() seeds its fast EMA later, so it is
    compared once that seed has decayed (after 300 bars it differs by < 1e-9 relative)."""
    _, _, close = ohlc
    macd = MACD(12, 26, 9)
    ours = [macd.update(float(c)) for c in close]
    line_ref = talib.EMA(close, 12) - talib.EMA(close, 26)
    signal_ref = np.full(N, np.nan)
    signal_ref[25:] = talib.EMA(line_ref[25:], 9)
    assert_series(
        [None if v is None else v[0] for v in ours], np.where(np.isnan(signal_ref), np.nan, line_ref)
    )
    assert_series([None if v is None else v[1] for v in ours], signal_ref)
    ta_line, ta_signal, ta_hist = talib.MACD(close, 12, 26, 9)
    for i in range(300, N):
        value = ours[i]
        assert value is not None
        assert value[0] == pytest.approx(ta_line[i], rel=1e-6, abs=1e-6)
        assert value[1] == pytest.approx(ta_signal[i], rel=1e-6, abs=1e-6)
        assert value[2] == pytest.approx(ta_hist[i], rel=1e-6, abs=1e-6)


def test_stochastic_matches_talib(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    high, low, close = ohlc
    stoch = Stochastic(14, 3, 3)
    ours = []
    for i, (h, lo, c) in enumerate(zip(high, low, close, strict=True)):
        ours.append(stoch.update(float(h), float(lo), float(c)))
        if i % 33 == 0:
            roundtrip(stoch)
    slowk, slowd = talib.STOCH(high, low, close, 14, 3, MA_Type.SMA, 3, MA_Type.SMA)
    assert_series([None if v is None else v[0] for v in ours], slowk, rel=1e-7)
    assert_series([None if v is None else v[1] for v in ours], slowd, rel=1e-7)


def test_bollinger_matches_talib(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, _, close = ohlc
    bands = BollingerBands(20, 2.0)
    ours = [bands.update(float(c)) for c in close]
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, MA_Type.SMA)
    # TA-Lib derives the deviation from running sums of squares (cancellation at ~3e4): relative 1e-7.
    assert_series([None if v is None else v[0] for v in ours], lower, rel=1e-7)
    assert_series([None if v is None else v[1] for v in ours], middle)
    assert_series([None if v is None else v[2] for v in ours], upper, rel=1e-7)


def test_ichimoku_lines_match_talib_midprice(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    high, low, _ = ohlc
    ichimoku = Ichimoku(9, 26, 52, 26)
    ours = []
    for i, (h, lo) in enumerate(zip(high, low, strict=True)):
        ours.append(ichimoku.update(float(h), float(lo)))
        if i % 29 == 0:
            roundtrip(ichimoku)
    tenkan = talib.MIDPRICE(high, low, 9)
    kijun = talib.MIDPRICE(high, low, 26)
    span_b = talib.MIDPRICE(high, low, 52)
    span_a = (tenkan + kijun) / 2
    warm = np.where(np.isnan(span_b), np.nan, 1.0)
    assert_series([None if v is None else v.tenkan for v in ours], tenkan * warm)
    assert_series([None if v is None else v.kijun for v in ours], kijun * warm)
    assert_series([None if v is None else v.span_b for v in ours], span_b)
    # The cloud under bar i is the spans of bar i - 25 (drawn displacement - 1 bars ahead).
    for i in range(51 + 25, N):
        value = ours[i]
        assert value is not None and value.cloud_a is not None
        assert value.cloud_a == pytest.approx(span_a[i - 25], rel=1e-12)
        assert value.cloud_b == pytest.approx(span_b[i - 25], rel=1e-12)
    first_cloud = ours[51 + 24]
    assert first_cloud is not None and first_cloud.cloud_a is None


def reference_supertrend(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """TradingView's ta.supertrend, transcribed from its Pine definition, on TA-Lib's ATR."""
    atr = talib.ATR(high, low, close, period)
    line = np.full(len(close), np.nan)
    direction = np.zeros(len(close))
    prev_upper = prev_lower = prev_line = np.nan
    for i in range(len(close)):
        if math.isnan(atr[i]):
            continue
        src = (high[i] + low[i]) / 2
        upper, lower = src + factor * atr[i], src - factor * atr[i]
        if not math.isnan(prev_line):
            lower = lower if (lower > prev_lower or close[i - 1] < prev_lower) else prev_lower
            upper = upper if (upper < prev_upper or close[i - 1] > prev_upper) else prev_upper
        if math.isnan(atr[i - 1]) if i > 0 else True:
            d = -1  # TradingView: direction := 1 (down) on the first bar with an ATR
        elif prev_line == prev_upper:
            d = 1 if close[i] > upper else -1
        else:
            d = -1 if close[i] < lower else 1
        line[i] = lower if d == 1 else upper
        direction[i] = d
        prev_upper, prev_lower, prev_line = upper, lower, line[i]
    return line, direction


def test_supertrend_matches_reference(ohlc: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    high, low, close = ohlc
    st = SuperTrend(10, 3.0)
    ours = []
    for i, (h, lo, c) in enumerate(zip(high, low, close, strict=True)):
        ours.append(st.update(float(h), float(lo), float(c)))
        if i % 17 == 0:
            roundtrip(st)
    line, direction = reference_supertrend(high, low, close, 10, 3.0)
    assert_series([None if v is None else v.line for v in ours], line)
    flips = 0
    for i, v in enumerate(ours):
        if v is not None:
            assert v.direction == direction[i], f"bar {i}"
            flips += i > 0 and ours[i - 1] is not None and ours[i - 1].direction != v.direction  # type: ignore[union-attr]
    assert flips >= 3, "the data should exercise trend flips"
