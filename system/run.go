package system

import (
	"context"
	"fmt"
	"io"
	"log/slog"

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

// RunWorker connects to Temporal and PostgreSQL and runs a worker until ctx
// is cancelled (SIGINT/SIGTERM), then stops it gracefully: polling stops,
// running activities finish.
func RunWorker(ctx context.Context, cfg Config, logger *slog.Logger) error {
	pool, err := OpenDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	c, err := DialTemporal(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	w := NewWorker(c, cfg, NewActivities(pool, c, cfg))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	if err := StartRiskSweep(ctx, c, cfg); err != nil {
		w.Stop()
		return err
	}
	logger.Info("worker started", "task_queue", cfg.TaskQueue, "temporal", cfg.TemporalAddress, "namespace", cfg.TemporalNamespace)
	<-ctx.Done()
	logger.Info("worker stopping")
	w.Stop()
	return nil
}
