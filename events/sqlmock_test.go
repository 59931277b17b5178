package events_test

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/leakless/leakless/events"
)

// The statements the database/sql variant sends, verbatim.
const (
	insertSQL   = `INSERT INTO "structure_events" (event_type, "subject_id", payload, created_at) VALUES ($1, $2, $3, $4)`
	lockSQL     = `SELECT pg_advisory_xact_lock(7314942630185127303)`
	versionsSQL = `CREATE TABLE IF NOT EXISTS "leakless_migrations" (
    component  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)`
	versionSQL = `SELECT COALESCE(max(version), 0) FROM "leakless_migrations" WHERE component = $1`
	recordSQL  = `INSERT INTO "leakless_migrations" (component, version, name) VALUES ($1, $2, $3) ON CONFLICT (component, version) DO NOTHING`
	createSQL  = `CREATE TABLE IF NOT EXISTS "structure_events" (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_type text        NOT NULL,
	"subject_id" text,
	payload    jsonb       NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
)`
	typeIndexSQL    = `CREATE INDEX IF NOT EXISTS "structure_events_type_created_at_idx" ON "structure_events" (event_type, created_at)`
	subjectIndexSQL = `CREATE INDEX IF NOT EXISTS "structure_events_subject_created_at_idx" ON "structure_events" ("subject_id", created_at)`
	listSQL         = `SELECT id, event_type, coalesce("subject_id"::text, ''), payload::text, created_at FROM "structure_events"`
)

var errDB = errors.New("server closed the connection unexpectedly")

// mocked returns a NewSQL sink on a go-sqlmock database that matches
// statements exactly, and checks at the end that every expectation was met.
func mocked(t *testing.T, opts ...events.Option) (*events.Postgres, sqlmock.Sqlmock, *sql.DB) {
	t.Helper()
	db, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mock.ExpectationsWereMet(); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	s, err := events.NewSQL(db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, mock, db
}

// anyTime matches any time.Time argument.
type anyTime struct{}

func (anyTime) Match(v sqldriver.Value) bool { _, ok := v.(time.Time); return ok }

func TestSQLEmit(t *testing.T) {
	s, mock, _ := mocked(t)
	mock.ExpectExec(insertSQL).
		WithArgs(events.TypeReaped, "ws-1", `{"instance_id":"i-0abc"}`, t0).
		WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(insertSQL).
		WithArgs("no_subject", nil, `{}`, anyTime{}).
		WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(insertSQL).WillReturnError(errDB)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Emit(ctx, events.Event{Type: events.TypeReaped, Subject: "ws-1", Payload: map[string]any{"instance_id": "i-0abc"}, At: t0.Add(999)}); err != nil {
		t.Fatalf("Emit = %v", err)
	}
	if err := s.Emit(ctx, events.Event{Type: "no_subject"}); err != nil {
		t.Fatalf("Emit = %v", err)
	}
	err := s.Emit(ctx, events.Event{Type: "t"})
	if !errors.Is(err, errDB) || !strings.HasPrefix(err.Error(), `events: emit "t": `) {
		t.Errorf("Emit = %v; want `events: emit \"t\": ...` wrapping the driver's error", err)
	}
}

func TestSQLEmitTx(t *testing.T) {
	s, mock, db := mocked(t)
	mock.ExpectBegin()
	mock.ExpectExec(insertSQL).WithArgs("t", "ws-1", `{}`, t0).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectExec(insertSQL).WillReturnError(errDB)
	mock.ExpectRollback()

	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EmitTx(context.Background(), tx, events.Event{Type: "t", Subject: "ws-1", At: t0}); err != nil {
		t.Fatalf("EmitTx = %v", err)
	}
	err = s.EmitTx(context.Background(), tx, events.Event{Type: "t"})
	if !errors.Is(err, errDB) || !strings.HasPrefix(err.Error(), `events: emit "t" in transaction: `) {
		t.Errorf("EmitTx = %v; want an error wrapping the driver's", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
}

// batchSQL is the multi-row INSERT for n events.
func batchSQL(n int) string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = fmt.Sprintf("($%d, $%d, $%d, $%d)", 4*i+1, 4*i+2, 4*i+3, 4*i+4)
	}
	return `INSERT INTO "structure_events" (event_type, "subject_id", payload, created_at) VALUES ` + strings.Join(rows, ", ")
}

func TestSQLEmitBatchOneStatement(t *testing.T) {
	s, mock, _ := mocked(t)
	mock.ExpectExec(batchSQL(2)).
		WithArgs("a", "s1", `{"n":1}`, t0, "b", nil, `{}`, t0).
		WillReturnResult(sqlmock.NewResult(0, 2))
	mock.ExpectExec(batchSQL(1)).WillReturnError(errDB)

	err := s.EmitBatch(context.Background(), []events.Event{
		{Type: "a", Subject: "s1", Payload: map[string]any{"n": 1}, At: t0},
		{Type: "b", At: t0},
	})
	if err != nil {
		t.Fatalf("EmitBatch = %v", err)
	}
	err = s.EmitBatch(context.Background(), []events.Event{{Type: "c"}})
	if !errors.Is(err, errDB) || !strings.HasPrefix(err.Error(), "events: emit batch of 1: 0 written: ") {
		t.Errorf("EmitBatch = %v; want an error wrapping the driver's", err)
	}
}

// A batch longer than BatchChunk goes in chunks of that many, one
// statement each, each its own transaction: no BEGIN, and a failed chunk
// leaves the ones before it written, as the error says.
func TestSQLEmitBatchChunks(t *testing.T) {
	batch := make([]events.Event, 2*events.BatchChunk+1)
	for i := range batch {
		batch[i] = events.Event{Type: "t", At: t0}
	}

	t.Run("all written", func(t *testing.T) {
		s, mock, _ := mocked(t)
		mock.ExpectExec(batchSQL(events.BatchChunk)).WillReturnResult(sqlmock.NewResult(0, events.BatchChunk))
		mock.ExpectExec(batchSQL(events.BatchChunk)).WillReturnResult(sqlmock.NewResult(0, events.BatchChunk))
		mock.ExpectExec(batchSQL(1)).WithArgs("t", nil, `{}`, t0).WillReturnResult(sqlmock.NewResult(0, 1))
		if err := s.EmitBatch(context.Background(), batch); err != nil {
			t.Fatalf("EmitBatch = %v", err)
		}
	})
	t.Run("second chunk fails", func(t *testing.T) {
		s, mock, _ := mocked(t)
		mock.ExpectExec(batchSQL(events.BatchChunk)).WillReturnResult(sqlmock.NewResult(0, events.BatchChunk))
		mock.ExpectExec(batchSQL(events.BatchChunk)).WillReturnError(errDB)
		err := s.EmitBatch(context.Background(), batch)
		var be *events.BatchError
		if !errors.As(err, &be) || !errors.Is(err, errDB) || be.Written != events.BatchChunk || be.Total != len(batch) {
			t.Fatalf("EmitBatch = %v; want a *BatchError wrapping the driver's, Written %d of %d", err, events.BatchChunk, len(batch))
		}
		if want := fmt.Sprintf("events: emit batch of %d: %d written: ", len(batch), events.BatchChunk); !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q; want it to start %q", err, want)
		}
	})
}

func TestSQLList(t *testing.T) {
	s, mock, _ := mocked(t)
	mock.ExpectQuery(listSQL+` WHERE event_type = $1 AND "subject_id" = $2 AND created_at >= $3 AND created_at < $4 ORDER BY created_at DESC, id DESC LIMIT $5`).
		WithArgs(events.TypeRetryExhausted, "i-1", t0, t0.Add(time.Hour), 10).
		WillReturnRows(sqlmock.NewRows([]string{"id", "event_type", "subject", "payload", "created_at"}).
			AddRow(2, events.TypeRetryExhausted, "i-1", `{"attempts": 3, "big": 9223372036854775807}`, t0.Add(time.Minute)).
			AddRow(1, events.TypeRetryExhausted, "i-1", `{}`, t0))
	mock.ExpectQuery(listSQL + ` ORDER BY created_at DESC, id DESC`).
		WillReturnRows(sqlmock.NewRows([]string{"id", "event_type", "subject", "payload", "created_at"}))

	got, err := s.List(context.Background(), events.Filter{Type: events.TypeRetryExhausted, Subject: "i-1", Since: t0, Until: t0.Add(time.Hour), Limit: 10})
	if err != nil {
		t.Fatalf("List = %v", err)
	}
	if len(got) != 2 || !got[0].At.Equal(t0.Add(time.Minute)) || jsonOf(t, got[0].Payload) != `{"attempts":3,"big":9223372036854775807}` {
		t.Errorf("List = %+v; want two events, the first with every digit of its payload kept", got)
	}
	if got, err := s.List(context.Background(), events.Filter{}); err != nil || len(got) != 0 {
		t.Errorf("List(all) = %v, %v; want no events", got, err)
	}
}

func TestSQLListErrors(t *testing.T) {
	const all = listSQL + ` ORDER BY created_at DESC, id DESC`
	cols := []string{"id", "event_type", "subject", "payload", "created_at"}
	tests := []struct {
		name   string
		expect func(sqlmock.Sqlmock)
		want   string
	}{
		{"query fails", func(m sqlmock.Sqlmock) { m.ExpectQuery(all).WillReturnError(errDB) }, errDB.Error()},
		{"row fails", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(all).WillReturnRows(sqlmock.NewRows(cols).AddRow(1, "t", "", `{}`, t0).AddRow(1, "t", "", `{}`, t0).RowError(1, errDB))
		}, errDB.Error()},
		{"scan fails", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(all).WillReturnRows(sqlmock.NewRows(cols).AddRow(1, "t", "", `{}`, "not a time"))
		}, "Scan"},
		{"payload is not JSON", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(all).WillReturnRows(sqlmock.NewRows(cols).AddRow(1, "t", "", `{"a":`, t0))
		}, `payload of "t" event`},
		{"payload is not an object", func(m sqlmock.Sqlmock) {
			m.ExpectQuery(all).WillReturnRows(sqlmock.NewRows(cols).AddRow(1, "t", "", `[1]`, t0))
		}, `payload of "t" event`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, mock, _ := mocked(t)
			tt.expect(mock)
			got, err := s.List(context.Background(), events.Filter{})
			if err == nil || got != nil || !strings.HasPrefix(err.Error(), "events: list: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("List = %v, %v; want nil and an `events: list: ` error containing %q", got, err, tt.want)
			}
		})
	}
}

func TestSQLMigrate(t *testing.T) {
	expectAll := func(m sqlmock.Sqlmock) {
		m.ExpectBegin()
		m.ExpectExec(lockSQL).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		m.ExpectExec(versionsSQL).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		m.ExpectQuery(versionSQL).WithArgs("events:structure_events").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(0))
		m.ExpectExec(createSQL).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		m.ExpectExec(typeIndexSQL).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		m.ExpectExec(subjectIndexSQL).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		m.ExpectExec(recordSQL).WithArgs("events:structure_events", 1, "initial").WillReturnResult(sqlmock.NewResult(0, 1))
	}
	t.Run("commit", func(t *testing.T) {
		s, mock, _ := mocked(t)
		expectAll(mock)
		mock.ExpectCommit()
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate = %v", err)
		}
		want := "-- events:structure_events version 1: initial\n\n" + versionsSQL + ";\n\n" + createSQL + ";\n\n" + typeIndexSQL + ";\n\n" + subjectIndexSQL + ";\n\n" +
			`INSERT INTO "leakless_migrations" (component, version, name) VALUES ('events:structure_events', 1, 'initial') ON CONFLICT (component, version) DO NOTHING;` + "\n"
		if s.SchemaSQL() != want {
			t.Errorf("SchemaSQL() =\n%s\nwant\n%s", s.SchemaSQL(), want)
		}
	})
	t.Run("up to date", func(t *testing.T) {
		s, mock, _ := mocked(t)
		mock.ExpectBegin()
		mock.ExpectExec(lockSQL).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		mock.ExpectExec(versionsSQL).WithoutArgs().WillReturnResult(sqlmock.NewResult(0, 0))
		mock.ExpectQuery(versionSQL).WithArgs("events:structure_events").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(1))
		mock.ExpectCommit()
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate = %v", err)
		}
	})
	t.Run("begin fails", func(t *testing.T) {
		s, mock, _ := mocked(t)
		mock.ExpectBegin().WillReturnError(errDB)
		if err := s.Migrate(context.Background()); !errors.Is(err, errDB) || !strings.HasPrefix(err.Error(), "events: migrate: ") {
			t.Fatalf("Migrate = %v; want an `events: migrate: ` error wrapping the driver's", err)
		}
	})
	t.Run("lock fails", func(t *testing.T) {
		s, mock, _ := mocked(t)
		mock.ExpectBegin()
		mock.ExpectExec(lockSQL).WillReturnError(errDB)
		mock.ExpectRollback()
		if err := s.Migrate(context.Background()); !errors.Is(err, errDB) {
			t.Fatalf("Migrate = %v; want the driver's error", err)
		}
	})
	t.Run("DDL fails", func(t *testing.T) {
		s, mock, _ := mocked(t)
		mock.ExpectBegin()
		mock.ExpectExec(lockSQL).WillReturnResult(sqlmock.NewResult(0, 0))
		mock.ExpectExec(versionsSQL).WillReturnResult(sqlmock.NewResult(0, 0))
		mock.ExpectQuery(versionSQL).WithArgs("events:structure_events").WillReturnRows(sqlmock.NewRows([]string{"v"}).AddRow(0))
		mock.ExpectExec(createSQL).WillReturnError(errDB)
		mock.ExpectRollback()
		if err := s.Migrate(context.Background()); !errors.Is(err, errDB) {
			t.Fatalf("Migrate = %v; want the driver's error", err)
		}
	})
	t.Run("commit fails", func(t *testing.T) {
		s, mock, _ := mocked(t)
		expectAll(mock)
		mock.ExpectCommit().WillReturnError(errDB)
		if err := s.Migrate(context.Background()); !errors.Is(err, errDB) {
			t.Fatalf("Migrate = %v; want the driver's error", err)
		}
	})
}

func TestSQLCustomNames(t *testing.T) {
	s, mock, _ := mocked(t, events.WithTable("audit.workspace_events"), events.WithSubjectColumn("workspace_id"))
	mock.ExpectExec(`INSERT INTO "audit"."workspace_events" (event_type, "workspace_id", payload, created_at) VALUES ($1, $2, $3, $4)`).
		WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectQuery(`SELECT id, event_type, coalesce("workspace_id"::text, ''), payload::text, created_at FROM "audit"."workspace_events" WHERE "workspace_id" = $1 ORDER BY created_at DESC, id DESC`).
		WithArgs("0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b01").
		WillReturnRows(sqlmock.NewRows([]string{"a", "b", "c", "d"}))
	if err := s.Emit(context.Background(), events.Event{Type: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(context.Background(), events.Filter{Subject: "0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b01"}); err != nil {
		t.Fatal(err)
	}
	if ddl := s.SchemaSQL(); !strings.Contains(ddl, `CREATE INDEX IF NOT EXISTS "workspace_events_subject_created_at_idx" ON "audit"."workspace_events" ("workspace_id", created_at)`) {
		t.Errorf("SchemaSQL() =\n%s\nwant the index named after the unqualified table, on the qualified one", ddl)
	}
}

// columnsSQL is the one catalog read a sink makes, on its first write.
const columnsSQL = `SELECT a.attname, coalesce(b.typname, t.typname), t.typtype = 'd', CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
WHERE a.attrelid = to_regclass($1) AND a.attname IN ($2, 'id') AND a.attnum > 0 AND NOT a.attisdropped`

// On a uuid subject column, a subject that is not a uuid is sent as NULL
// with its text in the payload, and List looks for it there; Before is a
// keyset found by the primary key. The column's type is read once.
func TestSQLMisfitSubjectAndBefore(t *testing.T) {
	s, mock, _ := mocked(t)
	mock.ExpectQuery(columnsSQL).WithArgs(`"structure_events"`, "subject_id").
		WillReturnRows(sqlmock.NewRows([]string{"attname", "typname", "domain", "typmod"}).
			AddRow("id", "int8", false, -1).AddRow("subject_id", "uuid", false, -1))
	mock.ExpectExec(insertSQL).WithArgs("t", nil, `{"n":1,"subject_text":"i-0abc"}`, t0).WillReturnResult(sqlmock.NewResult(1, 1))
	mock.ExpectExec(insertSQL).WithArgs("t", "0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b01", `{}`, t0).WillReturnResult(sqlmock.NewResult(2, 1))
	mock.ExpectQuery(listSQL+` WHERE "subject_id" IS NULL AND payload->>'subject_text' = $1 AND (created_at, id) < (SELECT created_at, id FROM "structure_events" WHERE id = $2) ORDER BY created_at DESC, id DESC LIMIT $3`).
		WithArgs("i-0abc", int64(7), 10).
		WillReturnRows(sqlmock.NewRows([]string{"id", "event_type", "subject", "payload", "created_at"}).
			AddRow(1, "t", "", `{"n":1,"subject_text":"i-0abc"}`, t0))

	ctx := context.Background()
	if err := s.Emit(ctx, events.Event{Type: "t", Subject: "i-0abc", Payload: map[string]any{"n": 1}, At: t0}); err != nil {
		t.Fatalf("Emit = %v", err)
	}
	if err := s.Emit(ctx, events.Event{Type: "t", Subject: "0b6f4c2e-1f1a-4d57-9d43-6e2f7c1a8b01", At: t0}); err != nil {
		t.Fatalf("Emit = %v", err)
	}
	got, err := s.List(ctx, events.Filter{Subject: "i-0abc", Before: 7, Limit: 10})
	if err != nil || len(got) != 1 || got[0].ID != 1 {
		t.Errorf("List = %+v, %v; want the one event, ID 1", got, err)
	}
}
