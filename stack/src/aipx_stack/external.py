"""ExternalStack: endpoints given by AIPX_* environment variables (a stack someone else runs)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from aipx_stack.base import ComponentStatus, Mode, State
from aipx_stack.config import COMPONENTS, S3_ACCESS_KEY, S3_SECRET_KEY, check_component
from aipx_stack.endpoints import Endpoints
from aipx_stack.errors import StackError, UnsupportedOperationError
from aipx_stack.native.stack import s3_settings
from aipx_stack.provision import probe_component, provision

ENDPOINT_VARS = {
    "kafka": "AIPX_KAFKA_BOOTSTRAP_SERVERS",
    "postgres": "AIPX_POSTGRES_DSN",
    "redis": "AIPX_REDIS_URL",
    "s3": "AIPX_S3_ENDPOINT_URL",
}


def endpoints_from_env(environ: Mapping[str, str] | None = None) -> Endpoints | None:
    """Endpoints from the AIPX_* variables, or None unless all four endpoint variables are set."""
    env = os.environ if environ is None else environ
    values = {name: env.get(var, "") for name, var in ENDPOINT_VARS.items()}
    if not all(values.values()):
        return None
    s3 = s3_settings()
    return Endpoints(
        kafka_bootstrap=values["kafka"],
        postgres_dsn=values["postgres"],
        redis_url=values["redis"],
        s3_endpoint_url=values["s3"],
        s3_bucket=s3.bucket,
        s3_region=s3.region,
        s3_access_key=s3.access_key_id.get_secret_value() if s3.access_key_id else S3_ACCESS_KEY,
        s3_secret_key=s3.secret_access_key.get_secret_value() if s3.secret_access_key else S3_SECRET_KEY,
    )


class ExternalStack:
    """A stack run elsewhere: checked and provisioned (topics, bucket), never started or stopped here."""

    mode: Mode = "external"

    def __init__(self, endpoints: Endpoints | None = None) -> None:
        found = endpoints or endpoints_from_env()
        if found is None:
            missing = [var for var in ENDPOINT_VARS.values() if not os.environ.get(var)]
            raise StackError(
                "AIPX_STACK_MODE=external needs every endpoint variable; missing: " + ", ".join(missing)
            )
        self._endpoints = found

    @property
    def endpoints(self) -> Endpoints:
        return self._endpoints

    def up(self) -> Endpoints:
        problems = [f"[{s.name}] {s.detail}" for s in self.status() if s.state != "running"]
        if problems:
            raise StackError(
                "the external stack (endpoints from AIPX_* environment variables) is not reachable:\n"
                + "\n".join(problems)
                + "\nStart it, fix the variables, or unset them to let aipx-stack run a native stack."
            )
        # The DSN's database exists (the probe connected to it); topics and the bucket may not.
        provision("kafka", self._endpoints)
        provision("s3", self._endpoints)
        return self._endpoints

    def down(self) -> None:
        raise UnsupportedOperationError(
            "the external stack (endpoints from AIPX_* environment variables) is not managed by aipx-stack; "
            "stop it where it runs"
        )

    def is_up(self) -> bool:
        return all(s.state == "running" for s in self.status())

    def status(self) -> list[ComponentStatus]:
        result = []
        for name in COMPONENTS:
            problem = probe_component(name, self._endpoints)
            state: State = "running" if problem is None else "unhealthy"
            result.append(ComponentStatus(name, state, _endpoint(name, self._endpoints), None, problem or ""))
        return result

    def _refuse(self, action: str, name: str) -> UnsupportedOperationError:
        check_component(name)
        return UnsupportedOperationError(
            f"cannot {action} {name}: the stack is external (endpoints from AIPX_* environment variables) "
            "and aipx-stack does not control it. Run with AIPX_STACK_MODE=native (or unset the AIPX_* "
            "endpoint variables) for tests that stop or restart components."
        )

    def start(self, name: str) -> None:
        raise self._refuse("start", name)

    def stop(self, name: str) -> None:
        raise self._refuse("stop", name)

    def restart(self, name: str) -> None:
        raise self._refuse("restart", name)


def _endpoint(name: str, endpoints: Endpoints) -> str:
    return {
        "kafka": endpoints.kafka_bootstrap,
        "postgres": endpoints.postgres_dsn.rsplit("@", 1)[-1],
        "redis": endpoints.redis_url,
        "s3": endpoints.s3_endpoint_url,
    }[name]
