-- Events (docs/adr/0021): a show whose sessions are activities. An activity names the event it
-- is a session of, fixed at creation; every activity that exists is a plain sale (no event).
CREATE TABLE events (
    id          BIGINT PRIMARY KEY,
    title       TEXT NOT NULL,
    venue       TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);
ALTER TABLE activities ADD COLUMN event_id BIGINT REFERENCES events (id);
CREATE INDEX activities_event ON activities (event_id, starts_at) WHERE event_id IS NOT NULL;
