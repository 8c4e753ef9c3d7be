-- Real-name sessions (docs/adr/0021). An activity says whether each ticket names its holder;
-- an order keeps its holders (names, document kinds, numbers masked and keyed-hashed: never
-- in the clear). ticket_documents is the database's own guard of "one document, one live
-- ticket per session": a row per holder of a live order, its primary key the activity and the
-- document's hash, written in the order's transaction and deleted when the order is cancelled
-- (a refund keeps it: a refunded ticket stays counted, as its unit does). IF NOT EXISTS, as
-- migrations 9 and 10.
ALTER TABLE activities ADD COLUMN IF NOT EXISTS real_name BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS holders JSONB NOT NULL DEFAULT '[]';
CREATE TABLE IF NOT EXISTS ticket_documents (
    activity_id BIGINT NOT NULL,
    doc_hash    TEXT   NOT NULL,
    order_id    BIGINT NOT NULL,
    PRIMARY KEY (activity_id, doc_hash)
);
CREATE INDEX IF NOT EXISTS ticket_documents_order ON ticket_documents (order_id);
