"""The MSK event source mapping mode a function runs under, and what it means for failed records.

AWS honours a Kafka mapping's `ReportBatchItemFailures`, `MaximumRetryAttempts` and
`BisectBatchOnFunctionError` only in *provisioned* mode. In the cheaper *on-demand* mode a partial batch
response is ignored: an invocation that returns `batchItemFailures` counts as a success and the listed
records are lost; only an invocation that raises is retried (the whole batch, until the records expire).
`AIPX_LAMBDA_ESM_MODE` tells the handlers (through `aipx.lambda_kit.KafkaBatch`) and the local runner which
contract applies. Terraform (modules/lambda) writes it into every function's environment from the same
variable that configures the mappings, and `AIPX_LAMBDA_ATTEMPT_STORE` next to it: where on-demand handlers
count a failing record's attempts (`aipx.lambda_kit.attempts`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from aipx.settings import StrictEnvSettings

EsmMode = Literal["provisioned", "on-demand"]
AttemptStore = Literal["redis", "process"]
PROVISIONED: EsmMode = "provisioned"
ON_DEMAND: EsmMode = "on-demand"


class LambdaSettings(StrictEnvSettings):
    """AIPX_LAMBDA_*: how the cold path's functions are invoked.

    esm_mode: `provisioned` (partial batch responses, bounded retries and bisect are honoured by the
    mapping) or `on-demand` (they are not: a batch with a failed record must fail the whole invocation).
    Default `provisioned`, the contract the local runner has always emulated; Terraform always sets it.
    attempt_store: where on-demand handlers count failed attempts of a record: `redis` (AIPX_REDIS_URL,
    shared by every instance and counting crashes and timeouts; the default, and what Terraform writes) or
    `process` (in this process only: for tools and tests without Redis; a crash or cold start forgets).
    attempt_ttl_s: how long a record's count is kept after its last failed attempt.
    """

    model_config = SettingsConfigDict(env_prefix="AIPX_LAMBDA_", extra="forbid", frozen=True)

    esm_mode: EsmMode = PROVISIONED
    attempt_store: AttemptStore = "redis"
    attempt_ttl_s: int = Field(24 * 3600, gt=0)


def esm_mode() -> EsmMode:
    """The mode from the environment (AIPX_LAMBDA_ESM_MODE)."""
    return LambdaSettings().esm_mode
