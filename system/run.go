package system

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"smartcopy/metrics"
	"smartcopy/schema"
)

// Migrate applies the schema to DATABASE_URL and prints what it ran.
func Migrate(ctx context.Context, cfg Config, out io.Writer) error {
	pool, err := OpenDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	ran, err := schema.Apply(ctx, pool)
	if err != nil {
		return err
	}
	if len(ran) == 0 {
		fmt.Fprintln(out, "schema is up to date")
	}
	for _, name := range ran {
		fmt.Fprintln(out, "applied", name)
	}
	return nil
}

// RunWorker runs a worker process (StartWorker) until ctx is cancelled
// (SIGINT/SIGTERM), then stops it gracefully: polling stops, running
// activities finish.
func RunWorker(ctx context.Context, cfg Config, logger *slog.Logger) error {
	p, err := StartWorker(ctx, cfg, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("worker stopping")
	p.Stop()
	return nil
}

// WorkerProcess is a running worker with what it opened: the PostgreSQL
// pool, the Temporal client and, when METRICS_ADDR is set, the metrics
// endpoint.
type WorkerProcess struct {
	// MetricsAddr is where /metrics is served: the bound address, so with
	// METRICS_ADDR=127.0.0.1:0 it names the port taken. Nil when metrics
	// are off.
	MetricsAddr net.Addr

	pool    *pgxpool.Pool
	client  client.Client
	worker  worker.Worker
	metrics *metrics.Server
}

// StartWorker connects to PostgreSQL and Temporal, serves metrics when
// METRICS_ADDR is set, starts a worker on the task queue and makes sure the
// stop-loss sweep runs. Any number of processes may run it against the same
// task queue: Temporal shares the work among them.
func StartWorker(ctx context.Context, cfg Config, logger *slog.Logger) (_ *WorkerProcess, err error) {
	p := &WorkerProcess{}
	defer func() {
		if err != nil {
			// Close what was opened before the failure.
			p.Stop()
		}
	}()
	var dialOpts []DialOption
	var m *metrics.Metrics
	if cfg.MetricsAddr != "" {
		if m, err = metrics.New(logger); err != nil {
			return nil, err
		}
		// Listen first: a port already taken fails start-up before
		// anything polls for work.
		if p.metrics, err = metrics.Serve(cfg.MetricsAddr, m.Handler(), logger); err != nil {
			return nil, fmt.Errorf("METRICS_ADDR: %w", err)
		}
		p.MetricsAddr = p.metrics.Addr()
		dialOpts = append(dialOpts, WithMetricsHandler(m.Temporal()))
	}
	if p.pool, err = OpenDatabase(ctx, cfg); err != nil {
		return nil, err
	}
	if p.client, err = DialTemporal(ctx, cfg, logger, dialOpts...); err != nil {
		return nil, err
	}
	acts := NewActivities(p.pool, p.client, cfg)
	if m != nil {
		// Set only when on: a nil *Metrics in the interface would not
		// read as "no metrics".
		acts.Metrics = m
	}
	w := NewWorker(p.client, cfg, acts)
	if err = w.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	p.worker = w
	if err = StartRiskSweep(ctx, p.client, cfg); err != nil {
		return nil, err
	}
	attrs := []any{"task_queue", cfg.TaskQueue, "temporal", cfg.TemporalAddress, "namespace", cfg.TemporalNamespace,
		"max_concurrent_activities", cfg.MaxConcurrentActivities, "max_concurrent_workflow_tasks", cfg.MaxConcurrentWorkflowTasks,
		"workflow_task_pollers", cfg.WorkflowTaskPollers, "activity_task_pollers", cfg.ActivityTaskPollers,
		"database_max_conns", cfg.DatabaseMaxConns}
	if p.MetricsAddr != nil {
		attrs = append(attrs, "metrics_addr", p.MetricsAddr.String())
	}
	logger.Info("worker started", attrs...)
	return p, nil
}

// Stop stops the worker (running activities finish), then closes the
// client, the pool and the metrics endpoint.
func (p *WorkerProcess) Stop() {
	if p.worker != nil {
		p.worker.Stop()
	}
	if p.client != nil {
		p.client.Close()
	}
	if p.pool != nil {
		p.pool.Close()
	}
	if p.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.metrics.Close(ctx)
	}
}
