package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"smartcopy/api"
	"smartcopy/copytrade"
	"smartcopy/devstack"
	"smartcopy/internal/pgtest"
	"smartcopy/schema"
	"smartcopy/store"
	"smartcopy/system"
	"smartcopy/workflows"
)

// stack is the system under fault: a Temporal dev server that keeps its
// state in a file (so a restart is a crash and recovery, not a wipe), a
// fresh PostgreSQL database, and the worker as a separate process built
// from ./worker, which the suite kills with SIGKILL and starts again.
type stack struct {
	cfg      Config
	dir      string // temp dir: the worker binary, its logs, the server's DB file
	temporal *devstack.Temporal
	adminURL string
	dbName   string
	dbURL    string
	dropDB   func()
	pool     *pgxpool.Pool
	client   client.Client
	store    *store.Store
	api      *api.Client
	pub      *api.Publisher
	sys      system.Config

	workerBin string
	// mu guards the worker fields: the session kills and starts workers,
	// the supervisor replaces one that exits on its own.
	mu       sync.Mutex
	worker   *workerProc
	workers  int      // worker processes started
	exits    []string // log tails of workers that exited after starting
	failures []string // log tails of workers that could not start
	stopping bool
}

// workerProc is one worker process.
type workerProc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	log    string
	killed bool
}

// startStack builds the worker, starts the dev server on a DB file and
// creates the database. close undoes what it did.
func startStack(ctx context.Context, cfg Config) (*stack, error) {
	s := &stack{cfg: cfg}
	var err error
	if s.dir, err = os.MkdirTemp("", "smartcopy-chaos-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	root, err := devstack.RepoRoot()
	if err != nil {
		return nil, err
	}
	s.workerBin = filepath.Join(s.dir, "worker")
	build := exec.CommandContext(ctx, "go", "build", "-o", s.workerBin, "./worker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build ./worker: %w: %s", err, out)
	}

	s.temporal, err = devstack.StartTemporal(ctx, devstack.TemporalOptions{
		SearchAttributes: workflows.SearchAttributeNames,
		DBFile:           filepath.Join(s.dir, "temporal.db"),
		Stdout:           io.Discard,
		Stderr:           io.Discard,
	})
	if err != nil {
		return nil, err
	}

	s.adminURL = pgtest.AdminURL()
	s.dbURL, s.dropDB, err = pgtest.CreateDatabase(ctx, s.adminURL, "smartcopy_chaos")
	if err != nil {
		return nil, err
	}
	s.dbName = dbName(s.dbURL)
	pc, err := pgxpool.ParseConfig(s.dbURL)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = 8
	if s.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	if _, err := schema.Apply(ctx, s.pool); err != nil {
		return nil, err
	}

	s.sys = system.Defaults()
	s.sys.TemporalAddress = s.temporal.Address
	s.sys.TemporalNamespace = s.temporal.Namespace
	s.sys.DatabaseURL = s.dbURL
	s.sys.TaskQueue = "smartcopy-chaos"
	if s.client, err = system.DialTemporal(ctx, s.sys, slog.New(slog.DiscardHandler)); err != nil {
		return nil, err
	}
	s.store = store.New(s.pool, s.sys.Workflow.Rules)
	s.api = api.New(s.client, s.store)
	s.api.TaskQueue = s.sys.TaskQueue
	s.pub = api.NewPublisher(s.client, s.store)
	s.pub.TaskQueue = s.sys.TaskQueue
	if err := s.startWorker(); err != nil {
		return nil, err
	}
	go s.supervise(ctx)
	ok = true
	return s, nil
}

// supervise does what a process supervisor (systemd, Kubernetes) does: a
// worker that exits without being killed is started again. Each such exit
// is kept: one that could not start (say, Temporal was restarting) and one
// that died while running are told apart by its log.
func (s *stack) supervise(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
		s.mu.Lock()
		w := s.worker
		if s.stopping {
			s.mu.Unlock()
			return
		}
		select {
		case <-w.done:
			if !w.killed {
				tail := logTail(w.log, 15)
				if strings.Contains(tail, `"msg":"worker started"`) {
					s.exits = append(s.exits, tail)
				} else {
					// Started while a dependency was down: give it a
					// moment before the next try, as a supervisor would.
					s.failures = append(s.failures, tail)
					time.Sleep(500 * time.Millisecond)
				}
				if err := s.startWorkerLocked(); err != nil {
					s.exits = append(s.exits, "could not start a new worker: "+err.Error())
				}
			}
		default:
		}
		s.mu.Unlock()
	}
}

func dbName(dbURL string) string {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return ""
	}
	return cfg.Database
}

// close stops the worker and the server and drops the database. The temp
// dir is kept when keepDir is set (a failed run's worker logs).
func (s *stack) close() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	if s.worker != nil {
		s.stopWorker()
	}
	if s.client != nil {
		s.client.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if s.temporal != nil {
		s.temporal.Stop()
	}
	if s.dropDB != nil {
		s.dropDB()
	}
	if s.dir != "" && !s.cfg.KeepDir {
		os.RemoveAll(s.dir)
	}
}

// startWorker starts a worker process with the environment a deployment
// would give it.
func (s *stack) startWorker() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startWorkerLocked()
}

func (s *stack) startWorkerLocked() error {
	s.workers++
	logPath := filepath.Join(s.dir, fmt.Sprintf("worker-%02d.log", s.workers))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.workerBin)
	cmd.Env = append(os.Environ(),
		"TEMPORAL_ADDRESS="+s.temporal.Address,
		"TEMPORAL_NAMESPACE="+s.temporal.Namespace,
		"DATABASE_URL="+s.dbURL,
		"DATABASE_MAX_CONNS=8",
		"SMARTCOPY_TASK_QUEUE="+s.sys.TaskQueue,
		fmt.Sprintf("SMARTCOPY_HISTORY_LIMIT=%d", s.cfg.HistoryLimit),
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start worker: %w", err)
	}
	w := &workerProc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		w.err = cmd.Wait()
		logFile.Close()
		close(w.done)
	}()
	s.worker = w
	return nil
}

// killWorker SIGKILLs the worker process: no graceful shutdown, its
// workflow tasks and activities are simply gone.
func (s *stack) killWorker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.worker
	w.killed = true
	select {
	case <-w.done:
		return
	default:
	}
	_ = syscall.Kill(w.cmd.Process.Pid, syscall.SIGKILL)
	<-w.done
}

// stopWorker stops the worker gracefully, killing it after 20 s.
func (s *stack) stopWorker() {
	s.mu.Lock()
	w := s.worker
	w.killed = true
	s.mu.Unlock()
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(w.cmd.Process.Pid, syscall.SIGKILL)
		<-w.done
	}
}

// workerLog is the current worker's log file.
func (s *stack) workerLog() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.worker.log
}

// cutConnections terminates every connection to the test database, the
// worker's and the suite's own alike, as a PostgreSQL restart would. It
// runs on the maintenance database, so it does not cut itself.
func (s *stack) cutConnections(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
		where datname = $1 and pid <> pg_backend_pid()) t`, s.dbName).Scan(&n)
	return n, err
}

// databaseDown makes the test database refuse connections and cuts the
// open ones (down), or lets it accept them again: a PostgreSQL outage of
// the test's database only, whatever else the server serves.
func (s *stack) databaseDown(ctx context.Context, down bool) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	allow := "true"
	if down {
		allow = "false"
	}
	if _, err := conn.Exec(ctx, "alter database "+pgx.Identifier{s.dbName}.Sanitize()+" with allow_connections "+allow); err != nil {
		return err
	}
	if down {
		_, err = conn.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1`, s.dbName)
	}
	return err
}

// openTransactions counts the test database's backends inside a
// transaction or running a statement, besides the caller's own.
func (s *stack) openTransactions(ctx context.Context) int {
	var n int
	_ = s.pool.QueryRow(ctx, `select count(*) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()
		and state in ('active', 'idle in transaction')`, s.dbName).Scan(&n)
	return n
}

// retry runs fn until it succeeds, is refused (a FieldError: an answer,
// not a fault), or the whole budget is spent. Faults make calls fail for a
// while: a server restarting, a connection cut. Each failure is counted.
func retry[T any](ctx context.Context, f *Figures, what string, fn func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(2 * time.Minute)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		v, err := fn(actx)
		cancel()
		var fe *copytrade.FieldError
		if err == nil || errors.As(err, &fe) || ctx.Err() != nil {
			return v, err
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("%s: still failing after 2 minutes: %w", what, err)
		}
		f.Retries++
		f.note("retry %s: %v", what, short(err))
		time.Sleep(wait)
		wait = min(wait*2, 2*time.Second)
	}
}

func short(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// logTail is the last n lines of a file.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
