-- At most one succeeded payment per order. A second success for the same order (two checkouts
-- both paid) is recorded as 'refund_due' and refunded.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'refund_due', 'refunded'));
CREATE UNIQUE INDEX payments_one_succeeded_per_order ON payments (order_id)
    WHERE status = 'succeeded';
