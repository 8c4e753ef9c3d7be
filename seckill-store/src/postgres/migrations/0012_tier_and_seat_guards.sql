-- The database's own guards of price tiers and seats (docs/adr/0021), beside the activity's
-- (sold <= total_stock) and the documents' (migration 11), in the order transaction:
-- activity_tier_units counts each tier's units in live orders against the tier's stock (its
-- CHECK and the guarded upsert), order_seats has one row per seat of a live order (its primary
-- key: a seat in one live order at most). Both are written with the order and given back when it
-- is cancelled (a refund keeps them, as it keeps the unit). The live orders written before this
-- migration are counted in now.
CREATE TABLE IF NOT EXISTS activity_tier_units (
    activity_id BIGINT NOT NULL,
    tier        INT    NOT NULL,
    units       INT    NOT NULL CHECK (units >= 0),
    stock       INT    NOT NULL,
    PRIMARY KEY (activity_id, tier),
    CHECK (units <= stock)
);
CREATE TABLE IF NOT EXISTS order_seats (
    activity_id BIGINT NOT NULL,
    seat        TEXT   NOT NULL,
    order_id    BIGINT NOT NULL,
    PRIMARY KEY (activity_id, seat)
);
CREATE INDEX IF NOT EXISTS order_seats_order ON order_seats (order_id);
INSERT INTO activity_tier_units (activity_id, tier, units, stock)
SELECT o.activity_id, (l->>'tier')::INT, sum((l->>'quantity')::INT)::INT, max((t->>'stock')::INT)
FROM orders o
CROSS JOIN LATERAL jsonb_array_elements(o.lines) l
JOIN activities a ON a.id = o.activity_id
CROSS JOIN LATERAL jsonb_array_elements(a.tiers) t
WHERE o.status <> 'cancelled' AND (t->>'id')::INT = (l->>'tier')::INT
GROUP BY 1, 2
ON CONFLICT DO NOTHING;
INSERT INTO order_seats (activity_id, seat, order_id)
SELECT o.activity_id, s.seat, o.id
FROM orders o
CROSS JOIN LATERAL jsonb_array_elements(o.lines) l
CROSS JOIN LATERAL jsonb_array_elements_text(COALESCE(l->'seats', '[]'::JSONB)) AS s(seat)
WHERE o.status <> 'cancelled'
ON CONFLICT DO NOTHING;
