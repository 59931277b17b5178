-- Idempotent writes: an event given a key (events.Spool gives every event
-- it holds one) is stored at most once, however often a write that may
-- have committed is tried again. Events without a key are not indexed.
ALTER TABLE {{table}} ADD COLUMN IF NOT EXISTS event_key text;

CREATE UNIQUE INDEX IF NOT EXISTS {{key_index}} ON {{table}} (event_key) WHERE event_key IS NOT NULL;
