-- AIPX OMS schema, version 7: an account HALTED with its working orders cancelled keeps cancelling - every
-- order of it that becomes live after the halt (committed while the halt was being applied, or acknowledged
-- by its venue afterwards) is cancelled too, by whichever OMS process leads. Cleared by the next state change.

ALTER TABLE accounts ADD COLUMN cancel_working_orders boolean NOT NULL DEFAULT false;
