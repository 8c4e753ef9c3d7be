-- seckill-rs schema, version 1.

CREATE TABLE users (
    id            BIGINT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    phone         TEXT,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    token_version INT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE products (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    list_price  BIGINT NOT NULL CHECK (list_price >= 0),
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE activities (
    id             BIGINT PRIMARY KEY,
    product_id     BIGINT NOT NULL REFERENCES products (id),
    title          TEXT NOT NULL,
    price          BIGINT NOT NULL CHECK (price >= 0),
    total_stock    INT NOT NULL CHECK (total_stock >= 0),
    -- Units in orders that are not cancelled. The order transaction's guard and this CHECK
    -- refuse an oversell even if the stock backend lost data.
    sold           INT NOT NULL DEFAULT 0,
    per_user_limit INT NOT NULL CHECK (per_user_limit >= 1),
    starts_at      TIMESTAMPTZ NOT NULL,
    ends_at        TIMESTAMPTZ NOT NULL,
    cancelled      BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL,
    CHECK (sold >= 0 AND sold <= total_stock),
    CHECK (starts_at < ends_at)
);
CREATE INDEX activities_by_start ON activities (starts_at DESC, id DESC);

-- The per-user limit, enforced by the database: a user's units in live orders of an activity.
CREATE TABLE activity_user_units (
    activity_id    BIGINT NOT NULL REFERENCES activities (id),
    user_id        BIGINT NOT NULL,
    units          INT NOT NULL,
    per_user_limit INT NOT NULL,
    PRIMARY KEY (activity_id, user_id),
    CHECK (units >= 0 AND units <= per_user_limit)
);

CREATE TABLE orders (
    id            BIGINT PRIMARY KEY,
    hold_id       BIGINT NOT NULL UNIQUE,            -- exactly one order per hold
    user_id       BIGINT NOT NULL,
    activity_id   BIGINT NOT NULL REFERENCES activities (id),
    quantity      INT NOT NULL CHECK (quantity >= 1),
    amount        BIGINT NOT NULL CHECK (amount >= 0),
    status        TEXT NOT NULL
                  CHECK (status IN ('pending_payment', 'paid', 'cancelled', 'refunded')),
    expires_at    TIMESTAMPTZ NOT NULL,
    payment_id    BIGINT,
    cancel_reason TEXT CHECK (cancel_reason IN ('user', 'timeout', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, id DESC);                  -- my orders
CREATE INDEX orders_by_status ON orders (status, id DESC);                 -- admin listing
CREATE INDEX orders_by_activity ON orders (activity_id, id DESC);          -- admin, reconcile
CREATE INDEX orders_pending_by_expiry ON orders (expires_at)
    WHERE status = 'pending_payment';                                      -- sweeper

-- Processed message ids of the order worker.
CREATE TABLE inbox (
    message_id   TEXT PRIMARY KEY,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    id              BIGINT PRIMARY KEY,
    order_id        BIGINT NOT NULL REFERENCES orders (id),
    user_id         BIGINT NOT NULL,
    provider        TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
    provider_txn_id TEXT UNIQUE,                                           -- dedupe callbacks
    callbacks_seen  INT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_by_order ON payments (order_id, id);
CREATE INDEX payments_by_status ON payments (status, id);
-- An order is paid by exactly one payment.
CREATE UNIQUE INDEX orders_one_paying_payment ON orders (payment_id) WHERE payment_id IS NOT NULL;
