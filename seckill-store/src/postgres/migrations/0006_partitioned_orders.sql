-- Orders, and the inbox that grows with them, partitioned: orders by hash of the buyer
-- (16 partitions: a buyer's orders live in one, so "my orders" reads one partition), the inbox
-- by hash of the message id. Existing rows are copied over in this migration's transaction.
--
-- A partitioned table's unique keys must hold its partition key, so the order's keys become
-- (id, user_id) and (hold_id, user_id). Nothing is lost by it: a hold belongs to one buyer and
-- an order id to one buy, so two rows with the same hold or id always land in the same
-- partition, and the order transaction's own duplicate check reads every partition anyway.
-- A payment now refers to its order by (order_id, user_id): a payment of someone else's order
-- cannot be stored. Payments stay one table (a provider's transaction id is unique across all).

ALTER TABLE payments DROP CONSTRAINT payments_order_id_fkey;

CREATE TABLE orders_partitioned (
    id            BIGINT NOT NULL,
    hold_id       BIGINT NOT NULL,
    user_id       BIGINT NOT NULL,
    activity_id   BIGINT NOT NULL,
    quantity      INT NOT NULL,
    amount        BIGINT NOT NULL,
    status        TEXT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    payment_id    BIGINT,
    cancel_reason TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    trace_parent  TEXT
) PARTITION BY HASH (user_id);

CREATE TABLE inbox_partitioned (
    message_id   TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
) PARTITION BY HASH (message_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE orders_p%s PARTITION OF orders_partitioned
                 FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
        EXECUTE format(
            'CREATE TABLE inbox_p%s PARTITION OF inbox_partitioned
                 FOR VALUES WITH (MODULUS 16, REMAINDER %s)', i, i);
    END LOOP;
END $$;

INSERT INTO orders_partitioned
    SELECT id, hold_id, user_id, activity_id, quantity, amount, status, expires_at,
           payment_id, cancel_reason, created_at, updated_at, trace_parent
    FROM orders;
INSERT INTO inbox_partitioned SELECT message_id, processed_at FROM inbox;
DROP TABLE orders;
DROP TABLE inbox;
ALTER TABLE orders_partitioned RENAME TO orders;
ALTER TABLE inbox_partitioned RENAME TO inbox;

-- The keys and checks, under the names they had (built once, after the copy).
ALTER TABLE orders
    ADD CONSTRAINT orders_pkey PRIMARY KEY (id, user_id),
    ADD CONSTRAINT orders_hold_id_key UNIQUE (hold_id, user_id),    -- exactly one order per hold
    ADD CONSTRAINT orders_activity_id_fkey FOREIGN KEY (activity_id) REFERENCES activities (id),
    ADD CONSTRAINT orders_quantity_check CHECK (quantity >= 1),
    ADD CONSTRAINT orders_amount_check CHECK (amount >= 0),
    ADD CONSTRAINT orders_status_check
        CHECK (status IN ('pending_payment', 'paid', 'cancelled', 'refunded')),
    ADD CONSTRAINT orders_cancel_reason_check
        CHECK (cancel_reason IN ('user', 'timeout', 'admin'));
CREATE INDEX orders_by_user ON orders (user_id, id DESC);                  -- my orders
CREATE INDEX orders_by_status ON orders (status, id DESC);                 -- admin listing
CREATE INDEX orders_by_activity ON orders (activity_id, id DESC);          -- admin, reconcile
CREATE INDEX orders_pending_by_expiry ON orders (expires_at)
    WHERE status = 'pending_payment';                                      -- sweeper
-- An order is paid by exactly one payment.
CREATE UNIQUE INDEX orders_one_paying_payment ON orders (payment_id, user_id)
    WHERE payment_id IS NOT NULL;
ALTER TABLE inbox ADD CONSTRAINT inbox_pkey PRIMARY KEY (message_id);

ALTER TABLE payments ADD CONSTRAINT payments_order_id_fkey
    FOREIGN KEY (order_id, user_id) REFERENCES orders (id, user_id);
