package mototest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startTimeout bounds how long a fresh moto_server may take to answer; a
// cold Python start on a busy CI machine takes a few seconds.
const startTimeout = 60 * time.Second

// keepAlive is the write end of the watcher's pipe. It is never written or
// closed: the kernel closes it when this process exits, however it exits,
// and the watcher then stops moto. Holding it in a package variable keeps
// the garbage collector from closing it early.
var keepAlive *os.File

// start runs moto_server on a free 127.0.0.1 port and returns its URL.
// A port taken between choosing and binding costs one more try.
func start() (string, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		missing = true
		return "", errors.New("moto_server not found on PATH")
	}
	var last error
	for range 3 {
		u, err := startOnce(bin)
		if err == nil {
			return u, nil
		}
		last = err
	}
	return "", last
}

func startOnce(bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	logFile, err := os.CreateTemp("", "leakless-moto-*.log")
	if err != nil {
		return "", err
	}
	defer logFile.Close()

	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile // never this binary's stdout: go test would wait for it to close
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(logFile.Name())
		return "", fmt.Errorf("start moto_server: %w", err)
	}
	pid := cmd.Process.Pid
	if err := watch(pid, logFile.Name()); err != nil {
		stop(pid)
		os.Remove(logFile.Name())
		return "", err
	}

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := call(ctx, http.MethodPost, base+"/moto-api/reset")
		cancel()
		if err == nil {
			return base, nil
		}
		var ws syscall.WaitStatus
		if p, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); p == pid {
			err := fmt.Errorf("moto_server exited (%v) before answering: %s", ws.ExitStatus(), tail(logFile.Name()))
			unwatch()
			return "", err
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("moto_server did not answer on %s within %v: %v: %s", base, startTimeout, err, tail(logFile.Name()))
			stop(pid)
			unwatch()
			return "", err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watch starts a detached watcher that stops moto's process group, and
// removes its log, once this process exits.
func watch(pid int, logName string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	script := fmt.Sprintf(`read _; kill -TERM -%[1]d 2>/dev/null
i=0; while kill -0 -%[1]d 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL -%[1]d 2>/dev/null; rm -f '%[2]s'`, pid, logName)
	watcher := exec.Command("sh", "-c", script)
	watcher.Stdin = r
	watcher.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this process's group
	if err := watcher.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start moto watcher: %w", err)
	}
	keepAlive = w
	return nil
}

// unwatch lets the watcher of a failed start finish now.
func unwatch() {
	keepAlive.Close()
	keepAlive = nil
}

// stop kills a moto_server that failed to start and reaps it.
func stop(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, 0, nil)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of moto's log, for error messages.
func tail(name string) string {
	b, _ := os.ReadFile(name)
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}
