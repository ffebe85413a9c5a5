"""The writer's leader session: the one PostgreSQL session through which the OMS leader commits.

Leadership is the session-level advisory lock WRITER_LOCK_KEY: the process whose writer session holds it is
the leader, every other OMS process on the database is a standby polling `pg_try_advisory_lock`. Because the
writer commits on that very session, a commit can only succeed while the lock is held: a leader whose session
died cannot acknowledge anything (fencing needs no check per commit).

Each time a process takes the lock it starts a new *term* (table oms_leadership) before it writes anything. A
leader that lost its session may continue on a new one only while the term is still its own: if another
process took the lock in between (and so may have written), the old leader is *fenced* and must rebuild its
state as a standby (FencedError).

How long a dead leader's lock survives is bounded by the session settings below (`SessionLimits`): PostgreSQL
ends the session, and so releases the lock, when
  - the process exited or was killed (its socket is closed by the kernel): at once;
  - it is hung or cut off while idle: `idle_session_timeout` (the live leader pings every `heartbeat_s`);
  - it stops inside a transaction: `idle_in_transaction_session_timeout`;
  - its host or network vanished while PostgreSQL was sending: `tcp_user_timeout`, or while idle, the TCP
    keepalives (idle + interval x count), whichever comes first.
Each is `timeout_s` (default 5 s), so a standby polling every `poll_s` takes over within timeout_s + poll_s of
a dead leader, and at once (poll_s) after a leader exited or was SIGKILLed.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from dataclasses import dataclass

import asyncpg

from aipx_oms.store.errors import StoreUnavailableError, is_unavailable
from aipx_oms.store.rows import init_connection

log = logging.getLogger(__name__)

WRITER_LOCK_KEY = 0x41495058_57525452  # "AIPXWRTR"


class SessionState(enum.Enum):
    """What the writer reports about its leader session."""

    LEADING = "leading"  # the session holds the lock: commits are acknowledged
    LOST = "lost"  # the session is gone: nothing commits until it is re-established (same term) ...
    FENCED = "fenced"  # ... or another process led since: this term is over for good


class LeaderLockHeldError(StoreUnavailableError):
    """Another OMS process holds the writer lock of this database (this one is a standby)."""


class FencedError(StoreUnavailableError):
    """This process's leadership term ended: another process led since; its in-memory state is stale."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """How quickly PostgreSQL ends (and unlocks) a dead leader's session; see the module docstring."""

    timeout_s: float = 5.0
    heartbeat_s: float = 1.0
    connect_timeout_s: float = 5.0

    def server_settings(self, application_name: str = "aipx-oms-writer") -> dict[str, str]:
        """Per-session PostgreSQL settings of a lock session (all settable by an ordinary role)."""
        ms = str(max(1, math.ceil(self.timeout_s * 1000)))
        idle = max(1, math.floor(self.timeout_s / 2))
        count = max(1, math.floor((self.timeout_s - idle) / 1))
        return {
            "application_name": application_name,
            "synchronous_commit": "on",
            "idle_session_timeout": ms,
            "idle_in_transaction_session_timeout": ms,
            "tcp_user_timeout": ms,
            "tcp_keepalives_idle": str(idle),
            "tcp_keepalives_interval": "1",
            "tcp_keepalives_count": str(count),
        }


class LeaderSession:
    """Takes and keeps the writer lock for one process, term by term."""

    def __init__(self, dsn: str, *, holder: str, limits: SessionLimits | None = None) -> None:
        self.dsn = dsn
        self.holder = holder
        self.limits = limits or SessionLimits()
        self.term: int | None = None
        self._conn: asyncpg.Connection | None = None

    @property
    def connection(self) -> asyncpg.Connection | None:
        """The session that holds the lock (None while not leading or after it was lost)."""
        conn = self._conn
        return conn if self.term is not None and conn is not None and not conn.is_closed() else None

    async def _open(self) -> asyncpg.Connection:
        try:
            conn = await asyncpg.connect(
                self.dsn, timeout=self.limits.connect_timeout_s, server_settings=self.limits.server_settings()
            )
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError(f"cannot connect to PostgreSQL: {exc}") from exc
            raise
        try:
            await init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _try_lock(self, conn: asyncpg.Connection) -> bool:
        try:
            return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", WRITER_LOCK_KEY))
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError(f"PostgreSQL unavailable: {exc}") from exc
            raise

    async def acquire(self) -> bool:
        """Try once to become the leader: True (a new term started) or False (another process leads).

        The polling session stays open between attempts, so a standby costs PostgreSQL one idle connection."""
        if self.connection is not None:
            return True
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._open()
        conn = self._conn
        try:
            if not await self._try_lock(conn):
                return False
            self.term = int(
                await conn.fetchval(
                    "INSERT INTO oms_leadership (id, term, holder) VALUES (true, 1, $1) ON CONFLICT (id) DO"
                    " UPDATE SET term = oms_leadership.term + 1, holder = EXCLUDED.holder, since = now()"
                    " RETURNING term",
                    self.holder,
                )
            )
        except BaseException:
            self.close()
            raise
        log.info("leader lock taken: term %d (%s)", self.term, self.holder)
        return True

    async def reconnect(self) -> asyncpg.Connection:
        """After the leader session was lost: a new session that continues the same term, or FencedError.

        StoreUnavailableError while PostgreSQL cannot be reached (try again later)."""
        term = self.term
        if term is None:
            raise FencedError("not leading")
        self.close_session()
        conn = await self._open()
        try:
            if not await self._try_lock(conn):
                raise FencedError(f"term {term} is over: another OMS process holds the writer lock")
            current = await conn.fetchval("SELECT term FROM oms_leadership WHERE id")
            if current != term:
                raise FencedError(f"term {term} is over: another OMS process led since (term {current})")
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, FencedError):
                self.term = None
            elif is_unavailable(exc):
                raise StoreUnavailableError(f"PostgreSQL unavailable: {exc}") from exc
            raise
        self._conn = conn
        log.info("leader session re-established, term %d continues", term)
        return conn

    async def heartbeat(self) -> None:
        """Keep the idle leader session alive (idle_session_timeout) and notice its loss early."""
        conn = self.connection
        if conn is None:
            raise StoreUnavailableError("the leader session is lost")
        try:
            await conn.fetchval("SELECT 1", timeout=self.limits.timeout_s)
        except Exception as exc:
            if is_unavailable(exc) or conn.is_closed():
                self.close_session()
                raise StoreUnavailableError(f"the leader session is lost: {exc}") from exc
            raise

    def close_session(self) -> None:
        """Drop the session (the lock goes with it) but keep the term: reconnect() may continue it."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None

    def close(self) -> None:
        """Leave leadership (or stop polling for it): the session and its lock are released at once."""
        self.close_session()
        self.term = None

    async def release(self) -> None:
        """Leave leadership cleanly: unlock and close, so that a standby takes over at its next poll."""
        conn = self._conn
        self.term = None
        self._conn = None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=self.limits.timeout_s)
            except Exception:
                conn.terminate()
