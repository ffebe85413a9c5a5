"""Pure parts of hot standby: the leader session's PostgreSQL settings bound a dead leader's lock, the
leadership settings are validated, the servicer's gate refuses calls while standby."""

from __future__ import annotations

import os

import pytest
from aipx_oms.events import EventBus
from aipx_oms.server import LeaderOnly
from aipx_oms.settings import OmsSettings
from aipx_oms.store.errors import StoreUnavailableError
from aipx_oms.store.leadership import SessionLimits
from pydantic import ValidationError


@pytest.mark.parametrize("timeout_s", [1.0, 2.5, 5.0, 7.0, 30.0])
def test_every_way_a_dead_session_lingers_is_bounded_by_the_timeout(timeout_s: float) -> None:
    settings = SessionLimits(timeout_s=timeout_s).server_settings()
    bound_ms = timeout_s * 1000
    assert int(settings["idle_session_timeout"]) <= bound_ms
    assert int(settings["idle_in_transaction_session_timeout"]) <= bound_ms
    assert int(settings["tcp_user_timeout"]) <= bound_ms
    keepalive_s = int(settings["tcp_keepalives_idle"]) + int(settings["tcp_keepalives_interval"]) * int(
        settings["tcp_keepalives_count"]
    )
    assert keepalive_s <= max(timeout_s, 2), "a vanished host is noticed within the bound"
    assert all(int(settings[k]) > 0 for k in settings if k.startswith(("idle", "tcp")))  # 0 would disable
    assert settings["synchronous_commit"] == "on"


def test_the_heartbeat_must_keep_a_live_idle_session_well_inside_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [k for k in os.environ if k.startswith("AIPX_OMS_")]:
        monkeypatch.delenv(key)
    OmsSettings(leader_session_timeout_s=4, leader_heartbeat_s=2)
    with pytest.raises(ValidationError, match="at most half"):
        OmsSettings(leader_session_timeout_s=4, leader_heartbeat_s=2.5)
    with pytest.raises(ValidationError):
        OmsSettings(leader_poll_s=0)
    monkeypatch.setenv("AIPX_OMS_LEADER_POLL_S", "0.25")
    assert OmsSettings().leader_poll_s == 0.25


async def test_the_gate_answers_unavailable_while_standby_and_forwards_while_leading() -> None:
    gate = LeaderOnly()
    with pytest.raises(StoreUnavailableError, match="standby"):
        _ = gate.instruments

    class Service:
        instruments = {"BTC-USDT": "instrument"}

        async def get(self, account: str) -> str:
            return f"order of {account}"

    gate.current = Service()  # type: ignore[assignment]
    assert gate.instruments == {"BTC-USDT": "instrument"}
    assert await gate.get("acct-a") == "order of acct-a"
    gate.current = None
    with pytest.raises(StoreUnavailableError):
        await gate.get("acct-a")


async def test_closing_the_bus_ends_every_live_stream_and_refuses_new_ones() -> None:
    bus = EventBus()
    live = bus.subscribe("acct-a")
    bus.close()
    for sub in (live, bus.subscribe("acct-b")):
        for _ in range(2):  # and stays ended
            with pytest.raises(StoreUnavailableError, match="stopped leading"):
                await sub.queue.get()
