-- History at scale (issue #16): every page of ListOrders and every catch-up page of StreamOrderEvents is an
-- index range scan that starts at its key (the page token / log sequence) and stops after the page, however
-- deep the offset and however many orders and events the database holds. tests/oms/test_history_indexes.py
-- asserts the plans on a database large enough for the planner to prefer them.
--
-- Already served by 001: ListOrders without filters (orders_account_created) and StreamOrderEvents without
-- filters (order_events_account), and by order id (order_events_order_sequence_unique, a handful of rows).

-- ListOrders filtered by one symbol: the symbol's orders of the account, newest first, keyset from the token
-- (the unfiltered index would read every other symbol's orders to fill a page).
CREATE INDEX orders_account_symbol_created ON orders (account_id, symbol, created_time_ns DESC, order_id DESC);

-- ListOrders open_only: the open orders of the account in page order, without reading closed history. It
-- replaces 001's orders_open (account_id only), which it serves as well (same predicate, account first):
-- one index less to maintain per order write, and no sort of every open order for each page.
DROP INDEX orders_open;
CREATE INDEX orders_open_created ON orders (account_id, created_time_ns DESC, order_id DESC)
    WHERE status IN ('PENDING_NEW', 'ACCEPTED', 'PARTIALLY_FILLED', 'PENDING_CANCEL');

-- StreamOrderEvents filtered by one symbol, from a deep log sequence.
CREATE INDEX order_events_account_symbol ON order_events (account_id, symbol, log_sequence);
