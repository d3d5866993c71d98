package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
	"smartcopy/api"
	"smartcopy/devstack"
	"smartcopy/schema"
	"smartcopy/store"
	"smartcopy/system"
	"smartcopy/workflows"
)

// stack is everything the bench runs on: the dev server (or a given
// Temporal), a fresh database (or a given one), pools, clients and the
// in-process workers.
type stack struct {
	opts   options
	runID  string
	log    io.Writer
	logger *slog.Logger

	temporal  *devstack.Temporal // nil when the server is given
	address   string
	namespace string
	serverPID int

	pg        *devstack.Postgres // nil when the database is given
	dbName    string
	dbURL     string
	createdDB bool

	// pool serves the workers' activities and the floor; apiPool the
	// publisher and the follower API, as separate processes would have.
	pool    *pgxpool.Pool
	apiPool *pgxpool.Pool
	// measure is the bench's own connection for polling and checks.
	measure *pgx.Conn
	cpuConn *pgx.Conn

	rec  *recorder
	sink *metricsSink

	cfg       system.Config
	acts      *activities.Activities
	naiveActs *naiveActivities
	naiveTQ   string
	pubClient client.Client
	clients   []client.Client
	workers   []worker.Worker
	store     *store.Store // on apiPool
	api       *api.Client
	publisher *api.Publisher

	setupTimes map[string]float64
}

func startStack(ctx context.Context, opts options, runID string, log io.Writer) (*stack, error) {
	s := &stack{opts: opts, runID: runID, log: log, rec: newRecorder(), sink: newMetricsSink(), setupTimes: map[string]float64{}}
	s.logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := s.startDatabase(ctx); err != nil {
		return s, err
	}
	if err := s.startTemporal(ctx); err != nil {
		return s, err
	}
	if err := s.connect(ctx); err != nil {
		return s, err
	}
	if err := s.startWorkers(); err != nil {
		return s, err
	}
	return s, nil
}

func (s *stack) timed(name string, start time.Time) { s.setupTimes[name] = ms(time.Since(start)) }

func (s *stack) startDatabase(ctx context.Context) error {
	defer s.timed("database", time.Now())
	if s.opts.databaseURL != "" {
		s.dbURL = s.opts.databaseURL
		u, err := url.Parse(s.dbURL)
		if err != nil {
			return fmt.Errorf("-database-url: %w", err)
		}
		s.dbName = strings.TrimPrefix(u.Path, "/")
		if s.dbName == "" {
			return fmt.Errorf("-database-url %s names no database", u.Redacted())
		}
		return nil
	}
	root, err := devstack.RepoRoot()
	if err != nil {
		return err
	}
	s.pg, err = devstack.EnsurePostgres(ctx, root, s.log)
	if err != nil {
		return err
	}
	s.dbName = "smartcopy_bench_" + s.runID
	s.dbURL, err = s.pg.EnsureDatabase(ctx, s.dbName)
	if err != nil {
		return err
	}
	s.createdDB = true
	return nil
}

func (s *stack) startTemporal(ctx context.Context) error {
	defer s.timed("temporal", time.Now())
	if s.opts.temporalAddress != "" {
		s.address, s.namespace = s.opts.temporalAddress, s.opts.namespace
		return nil
	}
	fmt.Fprintln(s.log, "starting the Temporal dev server (UI off)...")
	t, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
		SearchAttributes: workflows.SearchAttributeNames,
		Stderr:           s.log,
	})
	if err != nil {
		return err
	}
	s.temporal, s.address, s.namespace = t, t.Address, t.Namespace
	s.serverPID = childPID("start-dev")
	return nil
}

func (s *stack) newPool(ctx context.Context, size int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(s.dbURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	pc.MaxConns = int32(size)
	pc.ConnConfig.Tracer = &pgTracer{rec: s.rec}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return pool, nil
}

// dial connects as system.DialTemporal does (the configuration's
// compression, TLS and so on), with the bench's metrics handler and
// interceptors.
func (s *stack) dial(ctx context.Context, interceptors ...interceptor.ClientInterceptor) (client.Client, error) {
	c, err := system.DialTemporal(ctx, s.cfg, s.logger, func(o *client.Options) {
		o.MetricsHandler = s.sink.handler()
		o.Interceptors = interceptors
	})
	if err != nil {
		return nil, err
	}
	s.clients = append(s.clients, c)
	return c, nil
}

func (s *stack) connect(ctx context.Context) error {
	var err error
	if s.pool, err = s.newPool(ctx, s.opts.dbConns); err != nil {
		return err
	}
	if s.apiPool, err = s.newPool(ctx, 4); err != nil {
		return err
	}
	if _, err := schema.Apply(ctx, s.pool); err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	if s.measure, err = pgx.Connect(ctx, s.dbURL); err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if s.cpuConn, err = pgx.Connect(ctx, s.dbURL); err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}

	s.cfg = system.Defaults()
	s.cfg.TemporalAddress, s.cfg.TemporalNamespace = s.address, s.namespace
	s.cfg.DatabaseURL = s.dbURL
	s.cfg.DatabaseMaxConns = s.opts.dbConns
	s.cfg.TaskQueue = "smartcopy-bench-" + s.runID
	s.naiveTQ = "bench-naive-" + s.runID
	if s.opts.maxActivities > 0 {
		s.cfg.MaxConcurrentActivities = s.opts.maxActivities
	}
	if s.opts.maxWorkflowTasks > 0 {
		s.cfg.MaxConcurrentWorkflowTasks = s.opts.maxWorkflowTasks
	}
	s.cfg.Workflow.Rules.MaxFollowersPerTrader = max(s.cfg.Workflow.Rules.MaxFollowersPerTrader, s.opts.n)
	s.cfg.TemporalGRPCCompression = s.opts.grpcCompression
	if s.opts.wfPollers > 0 {
		s.cfg.WorkflowTaskPollers = s.opts.wfPollers
	}
	if s.opts.actPollers > 0 {
		s.cfg.ActivityTaskPollers = s.opts.actPollers
	}
	if s.opts.followTimeout > 0 {
		s.cfg.Workflow.FollowTimeout = s.opts.followTimeout
	}

	if s.pubClient, err = s.dial(ctx); err != nil {
		return err
	}
	s.store = store.New(s.apiPool, s.cfg.Workflow.Rules)
	s.api = api.New(s.pubClient, s.store)
	s.api.TaskQueue = s.cfg.TaskQueue
	s.publisher = api.NewPublisher(s.pubClient, s.store)
	s.publisher.TaskQueue = s.cfg.TaskQueue
	s.publisher.Concurrency = s.opts.concurrency
	return nil
}

// workerOptions are system.NewWorker's options, for the naive and probe
// workers, so that every worker in a run is tuned alike.
func (s *stack) workerOptions() worker.Options {
	return worker.Options{
		MaxConcurrentActivityExecutionSize:     s.cfg.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: s.cfg.MaxConcurrentWorkflowTasks,
		MaxConcurrentWorkflowTaskPollers:       s.cfg.WorkflowTaskPollers,
		MaxConcurrentActivityTaskPollers:       s.cfg.ActivityTaskPollers,
	}
}

// startWorkers starts -workers smartcopy workers and as many naive ones,
// each pair on a client (a connection) of its own, as separate worker
// processes would be. The activities share one pool.
func (s *stack) startWorkers() error {
	if s.opts.stickyCache > 0 {
		worker.SetStickyWorkflowCacheSize(s.opts.stickyCache)
	}
	// The risk sweep is not started: stop losses are not part of the
	// benchmark, and its signals would add load.
	for range s.opts.workers {
		c, err := s.dial(context.Background(), &activityTimer{rec: s.rec})
		if err != nil {
			return err
		}
		if s.acts == nil {
			s.acts = system.NewActivities(s.pool, c, s.cfg)
			s.acts.Venue = &timedVenue{Venue: s.acts.Venue, rec: s.rec}
			s.naiveActs = &naiveActivities{Venue: s.acts.Venue}
		}
		w := system.NewWorker(c, s.cfg, s.acts)
		nw := worker.New(c, s.naiveTQ, s.workerOptions())
		nw.RegisterWorkflowWithOptions(naiveCopy, workflow.RegisterOptions{Name: naiveWorkflowName})
		nw.RegisterActivityWithOptions(s.naiveActs.Place, activity.RegisterOptions{Name: naiveActivityName})
		for _, w := range []worker.Worker{w, nw} {
			if err := w.Start(); err != nil {
				return fmt.Errorf("start worker: %w", err)
			}
			s.workers = append(s.workers, w)
		}
	}
	return nil
}

// stop stops what the bench started and drops the database it created,
// unless -keep.
func (s *stack) stop() {
	for _, w := range s.workers {
		w.Stop()
	}
	for _, c := range s.clients {
		c.Close()
	}
	for _, conn := range []*pgx.Conn{s.measure, s.cpuConn} {
		if conn != nil {
			conn.Close(context.Background())
		}
	}
	for _, p := range []*pgxpool.Pool{s.pool, s.apiPool} {
		if p != nil {
			p.Close()
		}
	}
	if s.temporal != nil {
		if err := s.temporal.Stop(); err != nil {
			fmt.Fprintln(s.log, "bench:", err)
		}
	}
	if s.createdDB && !s.opts.keep {
		if err := dropDatabase(s.pg.AdminURL, s.dbName); err != nil {
			fmt.Fprintln(s.log, "bench:", err)
		}
	} else if s.createdDB {
		fmt.Fprintf(s.log, "kept database %s\n", s.dbName)
	}
	if s.pg != nil {
		if err := s.pg.Stop(); err != nil {
			fmt.Fprintln(s.log, "bench:", err)
		}
	}
}

func dropDatabase(adminURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}
