"""OperatorEntries: an operator's deposit, withdrawal or adjustment goes through the order path, so that funds
are never promised twice.

New orders reserve their funds in the account's in-memory ledger (with no await since their checks) and commit
the reservation later, through the group-commit writer. An entry posted beside that path (on its own
connection, the book re-read after a NOTIFY) raced it both ways: a withdrawal checked against the committed
reservations only, so it could take funds an order had reserved but not yet committed; and until the NOTIFY
arrived, new orders could still reserve funds the withdrawal had taken. So an entry is posted like an order:
- a debit is checked against the in-memory free balance, which counts every reservation taken so far,
  committed or not, and held there at once (no await in between): orders checked after it see it;
- the entry, its audit record and its NOTIFY commit through the same writer, after every reservation queued
  before it (the writer commits in order), where the store checks it again under the balance row lock;
- a credit reaches memory after its commit (an order may only reserve committed funds); a debit that did
  not commit (refused, a repeat of its idempotency key, an error) is taken back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aipx_oms.domain.ledger import Entry
from aipx_oms.store import ledger
from aipx_oms.store.ledger import Conn, PostedEntry
from aipx_oms.store.writer import Mutation, WriteResult
from aipx_oms.usecases.books import BookCache
from aipx_oms.usecases.committing import Committer

# Written with the entry, in its transaction, once it is posted (the operator's audit record, a NOTIFY).
AfterPost = Callable[[Conn, PostedEntry], Awaitable[None]]


class OperatorEntries:
    """See the module docstring."""

    def __init__(self, books: BookCache, committer: Committer) -> None:
        self.books = books
        self.committer = committer

    async def post(self, entry: Entry, after: AfterPost) -> PostedEntry:
        """Post `entry` once per idempotency key (InsufficientBalanceError when a cash account's free balance,
        reservations in flight included, does not cover a debit); `after` runs in its transaction."""
        account_id = entry.account_id
        book = await self.books.book(account_id)
        debit = entry.amount < 0
        if debit:
            book.ledger.post(entry)  # checks the free balance and holds the debit, or raises

        async def in_commit(conn: Conn) -> PostedEntry:
            posted = await ledger.post_entry(conn, entry)
            await after(conn, posted)
            return posted

        def undo(_: Any = None) -> None:
            if debit:
                book.ledger.undo(entry)

        def applied(result: WriteResult) -> None:
            posted: PostedEntry = result.in_commit
            if not posted.created:  # the key was used before: that entry is in memory already
                undo()
            elif self.books.loaded(account_id) is not book:
                # Re-read meanwhile (a commit whose outcome was unknown): perhaps before this entry.
                self.books.mark_stale(account_id)
            elif not debit:
                book.ledger.post(entry)

        result = await self.committer.write(account_id, Mutation(in_commit=in_commit), applied, undo)
        posted: PostedEntry = result.in_commit
        return posted
