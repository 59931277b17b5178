-- The schema the unversioned Migrate of earlier releases created: every
-- statement is idempotent, so a database made by such a release takes
-- this version as it is.
CREATE TABLE IF NOT EXISTS {{table}} (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_type text        NOT NULL,
	{{subject}} text,
	payload    jsonb       NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
);

-- List's two common questions: "every event of this type, newest first"
-- (the leak ledger) and "everything about this resource".
CREATE INDEX IF NOT EXISTS {{type_index}} ON {{table}} (event_type, created_at);

CREATE INDEX IF NOT EXISTS {{subject_index}} ON {{table}} ({{subject}}, created_at);
