-- Leadership terms of the OMS writer (services/oms/src/aipx_oms/store/leadership.py).
-- The leader is the process whose writer session holds the advisory lock; each time a process takes the
-- lock it starts a new term here before it writes anything. A leader that lost its session may continue
-- on a new session only while the term is still its own: nobody else led (and wrote) in between.
CREATE TABLE oms_leadership (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    term        bigint NOT NULL CHECK (term > 0),
    holder      text NOT NULL,
    since       timestamptz NOT NULL DEFAULT now()
);
