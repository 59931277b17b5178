package events

import "errors"

// ErrConfig is wrapped by every error that reports a bad option or argument
// given to [NewPostgres] or [NewSQL], such as a table name that is not a
// plain identifier.
var ErrConfig = errors.New("events: invalid configuration")

// ErrUnsupportedTx is returned by [Postgres.EmitTx] when its transaction is
// neither a pgx.Tx nor a *sql.Tx.
var ErrUnsupportedTx = errors.New("events: unsupported transaction type")

// ErrPayload is wrapped by the error a Postgres sink returns when an event's
// payload cannot be marshalled to JSON. Nothing is written in that case: not
// the event, and, in EmitBatch, none of the batch.
var ErrPayload = errors.New("events: payload is not valid JSON")
