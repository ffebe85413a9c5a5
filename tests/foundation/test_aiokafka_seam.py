"""The one seam into aiokafka's private producer internals (aipx.kafka.clients): it fits the pinned version
and fails loudly here when an aiokafka upgrade changes what NodeDrainingAccumulator relies on; a producer
whose internals do not fit keeps aiokafka's own accumulator instead of breaking."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import aiokafka
import pytest
from aiokafka import AIOKafkaProducer
from aipx.kafka import create_producer
from aipx.kafka.clients import (
    AIOKAFKA_VERIFIED,
    NodeDrainingAccumulator,
    install_node_draining,
    node_draining_unfit,
)
from aipx.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]


def test_aiokafka_is_pinned_to_the_version_the_seam_was_verified_with() -> None:
    deps = tomllib.loads((ROOT / "libs/aipx/pyproject.toml").read_text())["project"]["dependencies"]
    [pin] = [d for d in deps if d.startswith("aiokafka")]
    assert pin.endswith(f"=={AIOKAFKA_VERIFIED}"), f"aiokafka must stay pinned ({pin})"
    assert aiokafka.__version__ == AIOKAFKA_VERIFIED, (
        f"aiokafka {aiokafka.__version__} is installed; NodeDrainingAccumulator was verified with "
        f"{AIOKAFKA_VERIFIED}: re-check its private surface (aipx.kafka.clients.node_draining_unfit) and "
        "tests/foundation/test_producer_draining.py, then update AIOKAFKA_VERIFIED and the pin"
    )


async def test_the_seam_fits_a_real_producer_and_installs_the_draining_accumulator() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")  # not started: nothing connects
    assert node_draining_unfit(producer) is None, "aiokafka's private surface changed"
    assert install_node_draining(producer)
    assert type(producer._message_accumulator) is NodeDrainingAccumulator
    made = create_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), client_id="seam")
    assert type(made._message_accumulator) is NodeDrainingAccumulator


async def test_a_producer_that_does_not_fit_keeps_its_accumulator_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    assert install_node_draining(producer)
    # Installed once, the accumulator is no longer aiokafka's own class: a second install must refuse.
    caplog.set_level(logging.WARNING)
    assert (
        node_draining_unfit(producer)
        == "the producer's accumulator is NodeDrainingAccumulator, not MessageAccumulator"
    )
    assert not install_node_draining(producer)
    assert "keeps aiokafka's accumulator" in caplog.text
