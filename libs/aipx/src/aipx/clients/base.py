"""GrpcClient: what every typed client of the platform shares - a channel opened on first use (on the event
loop that uses it, so a client built outside a loop, e.g. at a Lambda's module level, works on the loop that
later calls it), the generated stub over it, one credential header sent with every call, a default deadline,
and `async with` closing the channel."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

import grpc

StubT = TypeVar("StubT")


class GrpcClient(ABC, Generic[StubT]):
    """A subclass names its credential header and builds its stub (`_new_stub`); see the module docstring."""

    credential_header: ClassVar[str]
    channel_options: ClassVar[Sequence[tuple[str, Any]]] = ()

    def __init__(
        self,
        target: str,
        credential: str,
        *,
        timeout_s: float,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.credentials = credentials
        self._metadata = ((self.credential_header, credential),)
        self._channel: grpc.aio.Channel | None = None
        self._stub: StubT | None = None

    @abstractmethod
    def _new_stub(self, channel: grpc.aio.Channel) -> StubT:
        """The generated stub over `channel`."""

    @property
    def stub(self) -> StubT:
        """The generated stub (its channel is opened on first use)."""
        if self._stub is None:
            options = list(self.channel_options)
            self._channel = (
                grpc.aio.secure_channel(self.target, self.credentials, options=options)
                if self.credentials is not None
                else grpc.aio.insecure_channel(self.target, options=options)
            )
            self._stub = self._new_stub(self._channel)
        return self._stub

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel (opened on first use), e.g. for the health service's stub."""
        if self._channel is None:
            _ = self.stub
        assert self._channel is not None
        return self._channel

    def _timeout(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (a later call opens a new one)."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()
