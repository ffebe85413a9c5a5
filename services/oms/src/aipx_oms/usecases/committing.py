"""Committer: commit a mutation through the group-commit writer, then apply its outcome to memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aipx_oms.domain.model import Order
from aipx_oms.store.errors import StoreUnavailableError, WriteConflictError
from aipx_oms.store.writer import GroupCommitWriter, Mutation, WriteResult
from aipx_oms.usecases.books import BookCache


class Committer:
    """Commit-then-apply (see `write`)."""

    def __init__(self, writer: GroupCommitWriter, books: BookCache) -> None:
        self.writer = writer
        self.books = books

    async def write(
        self,
        account_id: str,
        mutation: Mutation,
        applied: Callable[[WriteResult], None],
        failed: Callable[[BaseException], None] | None = None,
    ) -> WriteResult:
        """Commit a mutation and apply its outcome to memory exactly once, before the caller resumes, and
        also when the caller is cancelled meanwhile (a deadline): what is committed is never forgotten."""
        future = self.writer.enqueue(mutation)

        def done(f: asyncio.Future[WriteResult]) -> None:
            error = f.exception()
            if error is None:
                applied(f.result())
                return
            if isinstance(error, StoreUnavailableError | WriteConflictError):
                # The commit may or may not have happened, or memory and database disagree: rebuild this
                # account's book from the database.
                self.books.mark_stale(account_id)
            if failed is not None:
                failed(error)

        if future.done():  # refused at once (shutting down): apply before the caller resumes, too
            done(future)
        else:
            future.add_done_callback(done)
        return await asyncio.shield(future)

    def applier(self, account_id: str, new: Order) -> Callable[[WriteResult], None]:
        """The usual `applied`: a created change becomes the order's latest version in memory."""

        def applied(result: WriteResult) -> None:
            if result.created:
                self.books.committed(account_id, new)

        return applied
