// Package testenv runs the whole system for end-to-end tests and the
// benchmark: a real Temporal dev server (the pinned CLI), a fresh PostgreSQL
// database with the schema, and smartcopy workers in the test process, all
// on a task queue of their own so tests sharing a server do not meet.
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"smartcopy/activities"
	"smartcopy/api"
	"smartcopy/devstack"
	"smartcopy/internal/pgtest"
	"smartcopy/store"
	"smartcopy/system"
	"smartcopy/workflows"
)

// StartTemporal starts the pinned dev server for a test binary, with the
// custom search attributes registered. Call it from TestMain and Stop it
// there.
func StartTemporal(ctx context.Context) (*devstack.Temporal, error) {
	return devstack.StartTemporal(ctx, devstack.TemporalOptions{
		SearchAttributes: workflows.SearchAttributeNames,
		// The server's errors help when a test fails; its banner does not.
		Stderr: os.Stderr,
	})
}

// Env is one test's system: its own database and task queue, the shared
// Temporal server, and a worker.
type Env struct {
	T         testing.TB
	Temporal  *devstack.Temporal
	Client    client.Client
	Pool      *pgxpool.Pool
	DBURL     string
	Store     *store.Store
	API       *api.Client
	Publisher *api.Publisher
	Config    system.Config
	// Prefix makes this test's ids unique on the shared server.
	Prefix  string
	workers []worker.Worker
}

var seq atomic.Int64

// Options adjust an Env.
type Options struct {
	// Configure changes the configuration before workers start.
	Configure func(*system.Config)
	// NoWorker leaves starting workers to the test.
	NoWorker bool
}

// New builds an Env on the given server.
func New(t testing.TB, tmp *devstack.Temporal, opts Options) *Env {
	t.Helper()
	dbURL, pool := pgtest.NewDatabase(t)
	cfg := system.Defaults()
	cfg.TemporalAddress = tmp.Address
	cfg.TemporalNamespace = tmp.Namespace
	cfg.DatabaseURL = dbURL
	cfg.TemporalGRPCCompression = "none"
	n := seq.Add(1)
	prefix := fmt.Sprintf("%s%d", strings.ReplaceAll(uuid.NewString()[:6], "-", ""), n)
	cfg.TaskQueue = "smartcopy-test-" + prefix
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	c, err := system.DialTemporal(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := store.New(pool, cfg.Workflow.Rules)
	e := &Env{T: t, Temporal: tmp, Client: c, Pool: pool, DBURL: dbURL, Store: s, Config: cfg, Prefix: prefix}
	e.API = api.New(c, s)
	e.API.TaskQueue = cfg.TaskQueue
	e.Publisher = api.NewPublisher(c, s)
	e.Publisher.TaskQueue = cfg.TaskQueue
	if !opts.NoWorker {
		e.StartWorker()
		if err := system.StartRiskSweep(context.Background(), c, cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c.TerminateWorkflow(context.Background(), workflows.RiskSweepID(cfg.TaskQueue), "", "test ended")
		})
	}
	return e
}

// StartWorker starts one more worker on the test's task queue, stopped at
// cleanup.
func (e *Env) StartWorker() worker.Worker {
	e.T.Helper()
	w := system.NewWorker(e.Client, e.Config, e.Activities())
	if err := w.Start(); err != nil {
		e.T.Fatal(err)
	}
	e.workers = append(e.workers, w)
	e.T.Cleanup(w.Stop)
	return w
}

// Activities wires activities to the test's database.
func (e *Env) Activities() *activities.Activities {
	return system.NewActivities(e.Pool, e.Client, e.Config)
}

// ID makes an id unique to this test.
func (e *Env) ID(name string) string { return name + "-" + e.Prefix }

// WaitApplied waits until the relationship has applied the trader's event
// seq (or has ended) and returns its state.
func (e *Env) WaitApplied(ctx context.Context, followerID, traderID string, seq int64) workflows.State {
	e.T.Helper()
	return e.WaitState(ctx, followerID, traderID, fmt.Sprintf("event %d applied", seq), func(s workflows.State) bool {
		return s.LastSeq >= seq || s.Status == workflows.StatusEnded
	})
}

// WaitState polls the relationship's state until ok holds, failing the test
// at ctx's deadline, or after a minute when ctx has none.
func (e *Env) WaitState(ctx context.Context, followerID, traderID, what string, ok func(workflows.State) bool) workflows.State {
	e.T.Helper()
	deadline, set := ctx.Deadline()
	if !set {
		deadline = time.Now().Add(time.Minute)
	}
	var last error
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		view, err := e.API.State(qctx, followerID, traderID)
		cancel()
		if err == nil && ok(view.State) {
			return view.State
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	e.T.Fatalf("%s/%s: %s not reached by %s (last error: %v)", followerID, traderID, what, deadline.Format(time.TimeOnly), last)
	return workflows.State{}
}

// WaitClosed waits for the relationship's workflow run to close and returns
// its result.
func (e *Env) WaitClosed(ctx context.Context, followerID, traderID string) workflows.Result {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var res workflows.Result
	if err := e.Client.GetWorkflow(ctx, workflows.WorkflowID(followerID, traderID), "").Get(ctx, &res); err != nil {
		e.T.Fatalf("workflow %s: %v", workflows.WorkflowID(followerID, traderID), err)
	}
	return res
}
