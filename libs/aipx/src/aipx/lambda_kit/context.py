"""A LambdaContext for tests and the local runner (what the Lambda runtime passes to a handler)."""

from __future__ import annotations

import time
import uuid

from aws_lambda_powertools.utilities.typing import LambdaContext
from aws_lambda_powertools.utilities.typing.lambda_client_context import LambdaClientContext
from aws_lambda_powertools.utilities.typing.lambda_cognito_identity import LambdaCognitoIdentity


class FakeLambdaContext(LambdaContext):
    """A real powertools `LambdaContext`, filled in locally; remaining time counts down from creation."""

    def __init__(
        self,
        function_name: str = "aipx-local",
        *,
        timeout_s: float = 60.0,
        memory_limit_in_mb: int = 512,
        aws_request_id: str | None = None,
        region: str = "ap-northeast-2",
        account_id: str = "000000000000",
    ) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self._memory_limit_in_mb = memory_limit_in_mb
        self._aws_request_id = aws_request_id or str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = f"local/{self._aws_request_id}"
        self._identity = LambdaCognitoIdentity()
        self._client_context = LambdaClientContext()
        self._tenant_id = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]  # base stub is a staticmethod
        """Milliseconds left before the (emulated) function timeout; never negative."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))
