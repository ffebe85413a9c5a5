"""Store errors the service maps to gRPC status codes."""

from __future__ import annotations

import asyncio

import asyncpg


class StoreUnavailableError(RuntimeError):
    """PostgreSQL cannot be reached (or a commit's outcome is unknown): the caller should retry."""


class WriteConflictError(RuntimeError):
    """A write found the database in another state than the OMS expected (nothing of it was committed)."""


class DeadlineExceededError(RuntimeError):
    """The caller's deadline passed before its write started (nothing was written)."""


# Errors meaning "the database is not reachable / the session is gone", as opposed to a bad statement.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    # A connection cut in the middle of an operation can leave asyncpg's protocol mid-state: the next use (or
    # the pool's reset on release) fails with "cannot switch to state N; another operation is in progress".
    # The connection is dead, the outcome unknown: the caller retries, as for any lost connection.
    asyncpg.InternalClientError,
)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)
