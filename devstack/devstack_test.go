package devstack

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

var searchAttributes = []string{"TraderID", "FollowerID", "CopyStatus"}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "go.mod")); err != nil {
		t.Fatalf("RepoRoot() = %s, which has no tools/go.mod: %v", root, err)
	}
}

func TestStartTemporalRegistersSearchAttributes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	tmp, err := StartTemporal(ctx, TemporalOptions{SearchAttributes: searchAttributes, UI: true, Namespace: "devstack-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dev server ready in %s at %s, UI %s", time.Since(began).Round(time.Millisecond), tmp.Address, tmp.UIAddress)
	t.Cleanup(func() {
		if err := tmp.Stop(); err != nil {
			t.Error(err)
		}
	})

	c, err := client.Dial(client.Options{HostPort: tmp.Address, Namespace: tmp.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: tmp.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range searchAttributes {
		if got := resp.GetCustomAttributes()[name]; got != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("search attribute %s: type %s, want Keyword", name, got)
		}
	}

	if tmp.UIAddress == "" {
		t.Fatal("UI requested but UIAddress is empty")
	}
	res, err := http.Get(tmp.UIAddress)
	if err != nil {
		t.Fatalf("Web UI: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("Web UI at %s answered %s", tmp.UIAddress, res.Status)
	}
}

// A restart keeps the port and, with a DB file, the workflows: the fault tests
// depend on both.
func TestTemporalRestartKeepsState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmp, err := StartTemporal(ctx, TemporalOptions{
		SearchAttributes: searchAttributes,
		DBFile:           filepath.Join(t.TempDir(), "temporal.db"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tmp.Stop(); err != nil {
			t.Error(err)
		}
	})
	if tmp.UIAddress != "" {
		t.Errorf("UI off but UIAddress = %q", tmp.UIAddress)
	}
	c, err := client.Dial(client.Options{HostPort: tmp.Address, Namespace: tmp.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No worker: the workflow just waits in the server, which is all we need.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "devstack-restart", TaskQueue: "devstack-none"}, "Nothing")
	if err != nil {
		t.Fatal(err)
	}

	addr := tmp.Address
	began := time.Now()
	if err := tmp.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart took %s", time.Since(began).Round(time.Millisecond))
	if tmp.Address != addr {
		t.Errorf("address changed across restart: %s -> %s", addr, tmp.Address)
	}
	desc, err := c.DescribeWorkflow(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		t.Fatalf("workflow lost across restart: %v", err)
	}
	if s := desc.RawResponse.GetWorkflowExecutionInfo().GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("workflow status after restart = %s, want Running", s)
	}
}

func TestStartTemporalFailsFastWhenServerExits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A DB file that is not SQLite makes the CLI exit at once.
	bad := filepath.Join(t.TempDir(), "not-sqlite.db")
	if err := os.WriteFile(bad, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	tmp, err := StartTemporal(ctx, TemporalOptions{DBFile: bad, Stderr: testWriter{t}})
	if err == nil {
		tmp.Stop()
		t.Fatal("StartTemporal succeeded on a DB file that is not SQLite")
	}
	if !strings.Contains(err.Error(), "not a database") {
		t.Errorf("error does not carry the server's reason: %v", err)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("failure took %s; the early exit was not noticed", d)
	}
	t.Logf("error after %s: %v", time.Since(began).Round(time.Millisecond), err)
}

func TestEnsureDatabaseIsIdempotent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := EnsurePostgres(ctx, root, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Error(err)
		}
	})
	checkEnsureDatabase(ctx, t, pg)
}

// The private server is the path a machine without a running PostgreSQL
// takes; it is forced here so the test does not depend on port 5432.
func TestPrivatePostgres(t *testing.T) {
	if _, err := findPGBin(""); err != nil {
		t.Skipf("private PostgreSQL cannot be tested: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := privateDir(t)

	began := time.Now()
	pg, err := startPrivate(ctx, dir, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("new cluster created and started in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() { pg.Stop() })
	if !pg.Private || !pg.started {
		t.Fatalf("startPrivate: Private=%v started=%v, want both", pg.Private, pg.started)
	}
	if os.Geteuid() == 0 {
		st, err := os.Stat(filepath.Join(dir, "pg", "PG_VERSION"))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fmt.Sprint(statUID(st)); uid == "0" {
			t.Errorf("running as root, the cluster belongs to root; want the postgres user")
		}
	}
	name := checkEnsureDatabase(ctx, t, pg)

	// A second caller finds the running server and reuses it without owning it.
	again, err := startPrivate(ctx, dir, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if again.AdminURL != pg.AdminURL || again.started {
		t.Errorf("second startPrivate: URL %s started=%v, want %s started=false", again.AdminURL, again.started, pg.AdminURL)
	}
	if err := again.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, pg.AdminURL); err != nil {
		t.Fatalf("Stop of a reused server stopped it: %v", err)
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, pg.AdminURL); err == nil {
		t.Fatal("server still answers after Stop")
	}

	// Starting again reuses the cluster on disk: the database is still there.
	began = time.Now()
	pg2, err := startPrivate(ctx, dir, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("existing cluster started in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() { pg2.Stop() })
	conn, err := pgx.Connect(ctx, pg2.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		t.Errorf("database %s gone after restart: the cluster was not reused", name)
	}
}

// checkEnsureDatabase creates a database twice, then concurrently, and
// returns its name. The database is dropped at cleanup.
func checkEnsureDatabase(ctx context.Context, t *testing.T, pg *Postgres) string {
	t.Helper()
	name := "devstack_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, pg.AdminURL); err == nil {
			conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
			conn.Close(ctx)
		}
	})
	first, err := pg.EnsureDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	second, err := pg.EnsureDatabase(ctx, name)
	if err != nil {
		t.Fatalf("second EnsureDatabase: %v", err)
	}
	if first != second {
		t.Errorf("EnsureDatabase URLs differ: %s then %s", first, second)
	}
	conn, err := pgx.Connect(ctx, first)
	if err != nil {
		t.Fatalf("connect to the ensured database: %v", err)
	}
	var current string
	err = conn.QueryRow(ctx, "select current_database()").Scan(&current)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if current != name {
		t.Errorf("URL %s leads to database %s, want %s", first, current, name)
	}

	other := name + "_c"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, pg.AdminURL); err == nil {
			conn.Exec(ctx, "drop database if exists "+pgx.Identifier{other}.Sanitize()+" with (force)")
			conn.Close(ctx)
		}
	})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pg.EnsureDatabase(ctx, other)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent EnsureDatabase: %v", err)
		}
	}
	return name
}

// privateDir makes a directory for a private cluster that the postgres OS
// user can reach when the test runs as root (t.TempDir's parent is 0700).
func privateDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "smartcopy-devstack-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
