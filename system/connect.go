package system

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
	"smartcopy/mailer"
	"smartcopy/store"
	"smartcopy/venue/paper"
	"smartcopy/workflows"
)

// DialOption adjusts the Temporal client options beyond what the
// configuration says.
type DialOption func(*client.Options)

// WithMetricsHandler sends the SDK's metrics (requests, polls, workflow
// and activity task latencies) to h; without it they are dropped.
func WithMetricsHandler(h client.MetricsHandler) DialOption {
	return func(o *client.Options) { o.MetricsHandler = h }
}

// DialTemporal connects to the Temporal frontend the configuration names,
// with TLS and an API key or client certificate when configured. The SDK
// logs through logger, so its lines are structured like smartcopy's.
func DialTemporal(ctx context.Context, cfg Config, logger *slog.Logger, dialOpts ...DialOption) (client.Client, error) {
	opts := client.Options{
		HostPort:  cfg.TemporalAddress,
		Namespace: cfg.TemporalNamespace,
		Logger:    log.NewStructuredLogger(logger),
	}
	if cfg.TemporalGRPCCompression == "none" {
		opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	for _, o := range dialOpts {
		o(&opts)
	}
	if cfg.TemporalTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		opts.ConnectionOptions.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else if cfg.TemporalTLS || cfg.TemporalAPIKey != "" {
		opts.ConnectionOptions.TLS = &tls.Config{}
	}
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey)
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (TEMPORAL_ADDRESS): %w", cfg.TemporalAddress, err)
	}
	return c, nil
}

// OpenDatabase opens the PostgreSQL pool and checks that it answers.
func OpenDatabase(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	pc.MaxConns = int32(cfg.DatabaseMaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL (DATABASE_URL): %w", err)
	}
	return pool, nil
}

// NewActivities wires the activities to PostgreSQL, the paper venue,
// Temporal (for the stop-loss sweep's signals) and, when SMTP is
// configured, the mailer.
func NewActivities(pool *pgxpool.Pool, c client.Client, cfg Config) *activities.Activities {
	acts := &activities.Activities{
		Store:    store.New(pool, cfg.Workflow.Rules),
		Venue:    paper.New(pool),
		Rules:    cfg.Workflow.Rules,
		Temporal: c,
	}
	if cfg.SMTPAddr != "" {
		acts.Mailer = &mailer.SMTP{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword}
	}
	return acts
}

// NewWorker builds a worker on the task queue with the relationship
// workflow and the activities registered.
//
// The sticky timeout is longer than the SDK's 5 s because of bursts: a
// trader event to 1,000 followers queues 1,000 workflow tasks on the sticky
// queue, which this machine drains in about 10 s. With 5 s, three of four
// timed out, each then cost a full replay from the task queue, a timeout
// event in the history (6.5 history events per copy instead of 5) and
// server work, and the burst took longer (bench, N=1000: last copy 17-26 s
// per event with 5 s; 9-16 s with 20 s, and no timeouts). The price is paid when a worker dies
// without shutting down: its relationships' next tasks wait this long (at
// most; the server stops using a sticky queue nobody polls after about
// 10 s) before another worker takes them.
func NewWorker(c client.Client, cfg Config, acts *activities.Activities) worker.Worker {
	w := worker.New(c, cfg.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.MaxConcurrentWorkflowTasks,
		WorkflowTaskPollerBehavior:             workflowTaskPollers(cfg.WorkflowTaskPollers),
		MaxConcurrentActivityTaskPollers:       cfg.ActivityTaskPollers,
		StickyScheduleToStartTimeout:           cfg.StickyScheduleToStart,
	})
	RegisterWorkflows(w, cfg.Workflow)
	w.RegisterActivity(acts)
	return w
}

// workflowTaskPollers keeps max pollers on the task queue and max on the
// worker's sticky queue.
//
// The SDK's fixed number of pollers (MaxConcurrentWorkflowTaskPollers) is one
// pool for both queues that sends every poll to the sticky queue while the
// server's last sticky answer reported a backlog. A trader event to 1,000
// relationships fills the sticky queue; tasks the worker has not taken
// within the sticky timeout move to the task queue, and no poll came there
// until a sticky long poll returned empty, about a minute later: the bench
// saw 600 of 1,000 copies wait that minute. With the poller behavior, the
// two queues have pollers of their own. The server scales them within
// [1, max] where it supports that; they start at max.
func workflowTaskPollers(max int) worker.PollerBehavior {
	return worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
		InitialNumberOfPollers: max,
		MinimumNumberOfPollers: 1,
		MaximumNumberOfPollers: max,
	})
}

// RegisterWorkflows registers the relationship workflow and the risk sweep
// under their names. Tests and the replayer use it too, so the names are
// registered one way.
func RegisterWorkflows(r worker.WorkflowRegistry, cfg workflows.Config) {
	wf := &workflows.Workflows{Config: cfg}
	r.RegisterWorkflowWithOptions(wf.CopyRelationship, workflow.RegisterOptions{Name: workflows.WorkflowName})
	r.RegisterWorkflowWithOptions(workflows.RiskSweep, workflow.RegisterOptions{Name: workflows.RiskSweepName})
}

// StartRiskSweep makes sure the task queue's stop-loss sweep runs: starting
// it when none runs, leaving a running one alone, so every worker can call
// it at start-up.
func StartRiskSweep(ctx context.Context, c client.Client, cfg Config) error {
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.RiskSweepID(cfg.TaskQueue),
		TaskQueue:                cfg.TaskQueue,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            "stop-loss sweep: signals relationships whose net PnL reached their stop loss",
	}, workflows.RiskSweepName, workflows.RiskSweepInput{Interval: cfg.RiskSweepInterval})
	if err != nil {
		return fmt.Errorf("start the stop-loss sweep: %w", err)
	}
	return nil
}
