-- A session's seat map (docs/adr/0021): blocks of seats of one row and one tier, best first;
-- fixed once written. An order's seats are in its tier lines (migration 9). IF NOT EXISTS, as
-- migration 9, for a test that gives an older schema today's columns first.
ALTER TABLE activities ADD COLUMN IF NOT EXISTS seats JSONB NOT NULL DEFAULT '[]';
