package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Bouncer starts a PgBouncer in transaction pooling mode in front of the
// test server, on a free 127.0.0.1 port, with two server connections per
// pool so that clients' transactions share them as a busy pooler's do. It
// returns a URL of the server's database through it, without a
// search_path: PgBouncer 1.18 refuses that startup parameter, so tests
// qualify their names with their schema. PgBouncer is stopped when t
// ends. With no pgbouncer on PATH (or in /usr/sbin, where Debian puts it)
// the test is skipped, or fails under CI.
func Bouncer(t testing.TB) string {
	t.Helper()
	base := ServerURL(t)
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr == nil {
			bin, err = "/usr/sbin/pgbouncer", nil
		}
	}
	if err != nil {
		msg := "pgtest: no pgbouncer on PATH: the transaction-pooling tests need it (apt-get install pgbouncer)"
		if InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u, err := url.Parse(base)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("pgtest: bouncer needs a postgres:// URL with a host, got %s", redact(base))
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	login := "postgres"
	if u.User != nil && u.User.Username() != "" {
		login = u.User.Username()
	}
	dbname := filepath.Base(u.Path)
	if dbname == "" || dbname == "/" || dbname == "." {
		dbname = login
	}
	server := fmt.Sprintf("host=%s port=%s user=%s dbname=%s", host, port, login, dbname)
	if pw, ok := u.User.Password(); ok {
		server += " password=" + pw
	}

	// Readable by the postgres user, whom PgBouncer runs as under root.
	dir, err := os.MkdirTemp("", "lkpgb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	listen, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ini := filepath.Join(dir, "pgbouncer.ini")
	conf := fmt.Sprintf(`[databases]
%s = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = %s
`, dbname, server, listen, filepath.Join(dir, "pgbouncer.log"))
	if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-q", ini)
	if os.Geteuid() == 0 {
		// PgBouncer refuses to run as root.
		pu, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root and no postgres user to run pgbouncer as: %v", err)
		}
		uid, _ := strconv.Atoi(pu.Uid)
		gid, _ := strconv.Atoi(pu.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("pgtest: start pgbouncer: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(listen))
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			exited <- err
			t.Fatalf("pgtest: pgbouncer exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgtest: pgbouncer not listening on %s after 10s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	through := url.URL{Scheme: "postgres", User: u.User, Host: addr, Path: "/" + dbname, RawQuery: "sslmode=disable"}
	return through.String()
}

// BouncerPool is a pool of 8 connections through Bouncer's URL in pgx's
// exec mode mode ("" for pgx's default), closed when t ends: eight
// clients on two server connections, as a busy pooler shares them.
func BouncerPool(t testing.TB, through, mode string) *pgxpool.Pool {
	t.Helper()
	u := through
	if mode != "" {
		u += "&default_query_exec_mode=" + mode
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
