// Package sqlident validates and quotes the SQL identifiers a host hands the
// library through configuration: table and column names.
//
// Values always travel as bind parameters, but identifiers cannot, so they
// are spliced into statements as text. Rather than trust or escape arbitrary
// input, this package accepts only plain identifiers — ASCII letters, digits
// and underscores, not starting with a digit, at most 63 bytes (PostgreSQL's
// NAMEDATALEN-1, past which the server would silently truncate) — with an
// optional "schema." prefix, and wraps every part in double quotes. A name
// such as `events; drop table x` is an error wrapping [ErrInvalid], never a
// statement.
//
// Quoting makes a name case-sensitive: "Events" and "events" are different
// tables, exactly as written in the configuration.
package sqlident
