-- The W3C trace context of the buy an order came from (NULL when untraced), so the payment
-- callback that settles the order continues the buy's trace.
ALTER TABLE orders ADD COLUMN trace_parent TEXT;
