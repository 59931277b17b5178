package mototest_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/mototest"
)

// TestHelperPrintURL is not a test of its own: TestServerStopsWithBinary
// runs it in a child test binary, which starts moto, prints its URL and exits.
func TestHelperPrintURL(t *testing.T) {
	if os.Getenv("LEAKLESS_MOTOTEST_CHILD") != "1" {
		t.Skip("run by TestServerStopsWithBinary")
	}
	os.Stdout.WriteString("MOTO_URL=" + mototest.URL(t) + "\n")
}

func TestServerStopsWithBinary(t *testing.T) {
	if os.Getenv(mototest.EnvURL) != "" {
		t.Skip("the server is external: this binary does not start one")
	}
	mototest.URL(t) // skips (or fails under CI) when moto is not installed

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPrintURL$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LEAKLESS_MOTOTEST_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child test binary: %v\n%s", err, out)
	}
	var u string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MOTO_URL="); ok {
			u = v
		}
	}
	if u == "" || u == mototest.URL(t) {
		t.Fatalf("child printed no URL of its own: %q\n%s", u, out)
	}

	// The child has exited; its moto must go away without anyone's help.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/moto-api/", nil)
		resp, err := client.Do(req)
		cancel()
		if err != nil {
			return // nothing listens any more
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("moto at %s still answers 15s after its test binary exited", u)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
