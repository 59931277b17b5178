// Package pgtest gives each test its own PostgreSQL schema on a real server.
//
// The server is the one named by LEAKLESS_TEST_DATABASE_URL, else
// DATABASE_URL. With neither set, pgtest starts a throwaway cluster with
// initdb and pg_ctl (found on PATH or under /usr/lib/postgresql/*/bin), once
// per test binary, and stops it when the binary exits. With no server to be
// had, tests skip with a message saying how to enable them, unless CI is set,
// in which case they fail.
package pgtest
