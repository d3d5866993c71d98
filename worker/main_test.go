package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test binary runs main when asked to, so the tests below run the
// worker as a process without building it.
func TestMain(m *testing.M) {
	if os.Getenv("SMARTCOPY_WORKER_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runWorker runs the worker process with only the given environment and
// returns its exit code and stderr.
func runWorker(t *testing.T, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append([]string{"SMARTCOPY_WORKER_TEST_RUN_MAIN=1", "PATH=" + os.Getenv("PATH")}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("worker still running after 30s; stderr:\n%s", stderr.String())
		return 0, ""
	}
}

// A wrong value stops the worker at start-up with exit code 2 and one line
// naming the variable, before it connects to anything: Temporal and
// PostgreSQL point at a closed port here, and the only output is that line.
func TestBadVariableFailsAtStartUp(t *testing.T) {
	for _, bad := range []string{
		"SMARTCOPY_MAX_CONCURRENT_ACTIVITIES=none",
		"METRICS_ADDR=9090",
		"DATABASE_URL=postgres://smartcopy@db:port/smartcopy",
		"SMARTCOPY_SPREAD_TOLERANCE=5",
	} {
		name := strings.SplitN(bad, "=", 2)[0]
		t.Run(name, func(t *testing.T) {
			code, stderr := runWorker(t, "TEMPORAL_ADDRESS=127.0.0.1:1", bad)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "worker: "+name+": ") {
				t.Errorf("stderr should be one line naming %s, got:\n%s", name, stderr)
			}
		})
	}
}

// A value that parses but does not work (nothing listens at DATABASE_URL)
// fails at start-up too, naming the variable, with exit code 1.
func TestUnreachableDatabaseNamesTheVariable(t *testing.T) {
	code, stderr := runWorker(t, "TEMPORAL_ADDRESS=127.0.0.1:1", "DATABASE_URL=postgres://smartcopy@127.0.0.1:1/smartcopy?sslmode=disable")
	if code != 1 || !strings.Contains(stderr, "(DATABASE_URL)") {
		t.Errorf("exit code %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "worker started") {
		t.Errorf("worker started without a database:\n%s", stderr)
	}
}
