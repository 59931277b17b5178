// Package pgdriver is the one seam between the library's SQL and a
// PostgreSQL driver: store, events and migrate are written once against
// [Executor], and pgx ([NewPgx]) and database/sql ([NewSQL]) each
// implement it once.
//
// A row that is not there is an error wrapping sql.ErrNoRows from either
// driver (pgx.ErrNoRows wraps it). COPY, which only pgx speaks, is the
// optional [Copier]: a caller checks for it with a type assertion and
// falls back to plain statements.
package pgdriver
