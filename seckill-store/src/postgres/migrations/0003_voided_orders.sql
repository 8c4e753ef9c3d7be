-- Order ids declared lost before their order was written: the stock backend lost the hold (a
-- Redis restarted without its data) and the buyer, asking after the payment deadline, was told
-- the order failed. No order with such an id is ever written afterwards. The order transaction
-- and the void both take the id's transaction-level advisory lock, so exactly one of them wins.
CREATE TABLE voided_orders (
    order_id  BIGINT PRIMARY KEY,
    user_id   BIGINT NOT NULL,
    voided_at TIMESTAMPTZ NOT NULL
);
