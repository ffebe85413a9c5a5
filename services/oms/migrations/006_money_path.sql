-- AIPX OMS schema, version 6: the money path of the order path (issue #14) - maker/taker fee rates per
-- instrument, and an optional per-account override (NULL: the instrument's rate).

ALTER TABLE instruments ADD COLUMN maker_fee_rate numeric NOT NULL DEFAULT 0
    CHECK (maker_fee_rate >= 0 AND maker_fee_rate < 1);
ALTER TABLE instruments ADD COLUMN taker_fee_rate numeric NOT NULL DEFAULT 0
    CHECK (taker_fee_rate >= 0 AND taker_fee_rate < 1);
ALTER TABLE accounts ADD COLUMN maker_fee_rate numeric CHECK (maker_fee_rate >= 0 AND maker_fee_rate < 1);
ALTER TABLE accounts ADD COLUMN taker_fee_rate numeric CHECK (taker_fee_rate >= 0 AND taker_fee_rate < 1);
