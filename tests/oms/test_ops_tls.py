"""Operations surface: Prometheus metrics and readiness on the ops endpoint, TLS on the gRPC port."""

from __future__ import annotations

import subprocess
from pathlib import Path

import aiohttp
import grpc
import pytest
from aipx.clients.oms import OmsClient
from aipx.settings import MetricsSettings
from aipx.v1 import common_pb2, orders_pb2
from aipx_oms.server import OmsApp

from tests.oms.conftest import KEY_A, OmsEnv

pytestmark = pytest.mark.integration
BUY = common_pb2.SIDE_BUY


async def test_metrics_and_readiness(oms_env: OmsEnv) -> None:
    app = OmsApp(oms_env.settings(metrics=MetricsSettings(host="127.0.0.1", port=0)), with_ops=True)
    oms_env.app = app
    await app.start()
    async with oms_env.client() as client:
        await client.submit("BTC-USDT", BUY, "0.01", price="1000")
        denied = await client.submit("BTC-USDT", BUY, "1000", price="100000")
        assert denied.order.status == orders_pb2.ORDER_STATUS_DENIED
        with pytest.raises(grpc.aio.AioRpcError):
            await client.get(order_id="missing")
    assert app.ops is not None and app.ops.port
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{app.ops.port}/metrics") as response:
            text = await response.text()
        async with http.get(f"http://127.0.0.1:{app.ops.port}/readyz") as response:
            ready = await response.json()
    assert 'aipx_oms_requests_total{code="OK",method="SubmitOrder"}' in text
    assert 'aipx_oms_requests_total{code="NOT_FOUND",method="GetOrder"}' in text
    assert 'aipx_oms_request_seconds_bucket{code="OK",le="0.005",method="SubmitOrder"}' in text
    assert 'aipx_oms_risk_denials_total{reason="MAX_NOTIONAL_EXCEEDED"}' in text
    assert 'aipx_oms_order_state_changes_total{state="ACCEPTED"}' in text
    assert "aipx_oms_outbox_lag_events" in text and "aipx_oms_commit_batch_operations_bucket" in text
    assert ready == {"ready": True, "checks": {"postgres": True, "writer": True, "redis": True}}


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.pem", directory / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_by_configuration(oms_env: OmsEnv, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    app = await oms_env.start(tls_cert_file=cert, tls_key_file=key)
    target = f"localhost:{app.port}"
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    async with OmsClient(target, KEY_A, credentials=credentials) as secure:
        response = await secure.submit("BTC-USDT", BUY, "0.01", price="1000")
        assert response.created
    async with OmsClient(target, KEY_A, timeout_s=2) as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await plaintext.instruments()
        assert exc.value.code() is grpc.StatusCode.UNAVAILABLE, "plaintext cannot talk to the TLS port"
