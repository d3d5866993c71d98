// Package e2e runs smartcopy end to end: the real Temporal dev server (the
// pinned CLI), real PostgreSQL, workers in the test process, and the same
// api package the CLI and upstream services use. No part that can run here
// is mocked.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"smartcopy/devstack"
	"smartcopy/internal/testenv"
)

// server is the dev server every test in the package shares; each test has
// its own database and task queue.
var server *devstack.Temporal

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	var err error
	server, err = testenv.StartTemporal(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start Temporal dev server:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}
