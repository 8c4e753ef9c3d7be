-- Price tiers and quotas of a session, and the tier lines of an order (docs/adr/0021). Both
-- are fixed once written; a plain sale has none ('[]'), as every row that exists. (IF NOT
-- EXISTS: a test gives an older schema the orders' column before migrating it.)
ALTER TABLE activities ADD COLUMN IF NOT EXISTS tiers JSONB NOT NULL DEFAULT '[]',
                       ADD COLUMN IF NOT EXISTS quotas JSONB NOT NULL DEFAULT '[]';
ALTER TABLE orders ADD COLUMN IF NOT EXISTS lines JSONB NOT NULL DEFAULT '[]';
