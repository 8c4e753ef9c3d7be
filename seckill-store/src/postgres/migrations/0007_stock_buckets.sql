-- Stock buckets (docs/adr/0020): how many parts an activity's stock is split into in the stock
-- backend. Fixed at creation; 1 for every activity that exists.
ALTER TABLE activities ADD COLUMN stock_buckets INT NOT NULL DEFAULT 1
  CHECK (stock_buckets BETWEEN 1 AND 64);
