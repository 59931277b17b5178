package events

import (
	"errors"
	"fmt"
)

// ErrConfig is wrapped by every error that reports a bad option or argument
// given to [NewPgx] or [NewSQL], such as a table name that is not a
// plain identifier.
var ErrConfig = errors.New("events: invalid configuration")

// ErrUnsupportedTx is returned by [Postgres.EmitTx] when its transaction is
// neither a pgx.Tx nor a *sql.Tx.
var ErrUnsupportedTx = errors.New("events: unsupported transaction type")

// ErrPayload is wrapped by the error a Postgres sink returns when an event's
// payload cannot be marshalled to JSON. Nothing is written in that case: not
// the event, and, in EmitBatch, none of the batch.
var ErrPayload = errors.New("events: payload is not valid JSON")

// ErrFilter is wrapped by the error [Postgres.List] returns for a [Filter]
// it cannot run: a Type or Subject holding a NUL byte or invalid UTF-8,
// which no stored event can have, or a negative Limit or Before.
var ErrFilter = errors.New("events: invalid filter")

// BatchError is the error [Postgres.EmitBatch] and [EmitAll] return when
// they could not record a whole batch: the first Written events of the
// batch are recorded (Postgres commits chunks one by one) and the rest are
// not. Recording the batch from Written on records each event once.
type BatchError struct {
	Written int   // events stored, from the start of the batch
	Total   int   // events in the batch
	Err     error // why the next chunk was not written
}

// Error reports how much of the batch was stored and why the rest was not.
func (e *BatchError) Error() string {
	return fmt.Sprintf("events: emit batch of %d: %d written: %v", e.Total, e.Written, e.Err)
}

// Unwrap returns Err, so errors.Is and errors.As see the driver's error.
func (e *BatchError) Unwrap() error { return e.Err }
