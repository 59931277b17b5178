// Package migrate is the versioned-migration machinery store and events
// share: numbered versions of embedded SQL, a version table that records
// which of them a database has, and the start-up check that the database
// is the version the code expects.
//
// Versions are recorded per component ("store:workspaces",
// "events:structure_events"): one database holds the library's tables for
// several host tables and sinks, each migrated on its own. Every version's
// SQL ends by recording itself, so SQL a host applies with its own tool
// (goose, golang-migrate) leaves the database exactly as Migrate would, and
// the version check passes.
package migrate
