-- The highest fencing token of the activity lock that an update of the activity was made
-- with. An update fenced with a lower token (its writer stalled past its lease and a later
-- holder has written since) changes nothing and is refused; token 0 is unfenced.
ALTER TABLE activities ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
