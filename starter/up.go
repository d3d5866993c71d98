package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"smartcopy/devstack"
	"smartcopy/schema"
	"smartcopy/system"
	"smartcopy/workflows"
)

// cmdUp runs the whole system on this machine: PostgreSQL (found or
// started), the pinned Temporal dev server with its Web UI and the custom
// search attributes, the schema, a worker, and the demo. It keeps running
// until Ctrl-C, then stops what it started.
func cmdUp(ctx context.Context, e *env, args []string) error {
	f := e.flags("up")
	noDemo := f.Bool("no-demo", false, "start everything but do not run the demo")
	port := f.Int("port", 7233, "Temporal frontend port")
	uiPort := f.Int("ui-port", 8233, "Temporal Web UI port")
	if err := f.parse(args); err != nil {
		return err
	}
	for name, p := range map[string]int{"port": *port, "ui-port": *uiPort} {
		if p < 1 || p > 65535 {
			return usageError{fmt.Sprintf("-%s: must be a TCP port, 1 to 65535, got %d", name, p)}
		}
	}
	root, err := devstack.RepoRoot()
	if err != nil {
		return err
	}
	log := e.out
	started := time.Now()

	pg, err := devstack.EnsurePostgres(ctx, root, log)
	if err != nil {
		return err
	}
	defer pg.Stop()
	// The money in PostgreSQL and the workflows in the dev server's file
	// must live and die together: the database is this checkout's own, and
	// it starts afresh whenever the dev server's file does.
	temporalDB := filepath.Join(root, ".devdata", "temporal.db")
	dbName := fmt.Sprintf("smartcopy_%x", sha256.Sum256([]byte(root)))[:len("smartcopy_")+8]
	if _, err := os.Stat(temporalDB); errors.Is(err, os.ErrNotExist) {
		if err := dropDatabase(ctx, pg.AdminURL, dbName); err != nil {
			return err
		}
	}
	dbURL, err := pg.EnsureDatabase(ctx, dbName)
	if err != nil {
		return err
	}
	e.printf("PostgreSQL: %s\n", dbURL)

	e.printf("Temporal: starting the pinned dev server (first run builds it, a few minutes)...\n")
	tmp, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
		SearchAttributes: workflows.SearchAttributeNames,
		UI:               true,
		Port:             *port,
		UIPort:           *uiPort,
		DBFile:           temporalDB,
	})
	if err != nil {
		return err
	}
	defer tmp.Stop()
	e.printf("Temporal: %s, Web UI %s\n", tmp.Address, tmp.UIAddress)

	// Everything else reads the same variables a deployment would set.
	os.Setenv("DATABASE_URL", dbURL)
	os.Setenv("TEMPORAL_ADDRESS", tmp.Address)
	os.Setenv("TEMPORAL_NAMESPACE", tmp.Namespace)
	if os.Getenv("TEMPORAL_GRPC_COMPRESSION") == "" {
		// The server is on this machine: compressing costs CPU, saves nothing.
		os.Setenv("TEMPORAL_GRPC_COMPRESSION", "none")
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	s, err := e.store(ctx)
	if err != nil {
		return err
	}
	ran, err := schema.Apply(ctx, s.Pool())
	if err != nil {
		return err
	}
	e.printf("schema: %d migration(s) applied\n", len(ran))

	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	w := system.NewWorker(c.Temporal, cfg, system.NewActivities(s.Pool(), c.Temporal, cfg))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	if err := system.StartRiskSweep(ctx, c.Temporal, cfg); err != nil {
		return err
	}
	e.printf("worker: polling task queue %s (ready in %s)\n\n", cfg.TaskQueue, time.Since(started).Round(time.Millisecond))

	if !*noDemo {
		p, err := e.publisher(ctx)
		if err != nil {
			return err
		}
		if err := runDemo(ctx, e.out, c, p); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	e.printf("\nTemporal Web UI: %s  (try the query: TraderID STARTS_WITH \"leader\" AND CopyStatus = \"active\")\n", tmp.UIAddress)
	e.printf("Try: DATABASE_URL=%q TEMPORAL_ADDRESS=%s go run ./starter help\n", dbURL, tmp.Address)
	e.printf("Running until Ctrl-C.\n")
	<-ctx.Done()
	slog.Info("stopping")
	e.printf("\nstopping the worker, the Temporal dev server and any PostgreSQL this started\n")
	return nil
}

func dropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
		return fmt.Errorf("reset database %s: %w", name, err)
	}
	return nil
}
