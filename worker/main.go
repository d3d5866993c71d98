// Command worker runs smartcopy's Temporal worker: the copy relationship
// workflow and its activities, against the Temporal server and PostgreSQL
// named by the environment (see system.Variables). With -migrate it applies
// the schema and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"smartcopy/system"
)

func main() {
	migrate := flag.Bool("migrate", false, "apply the PostgreSQL schema and exit")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := system.LoadConfigFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	if *migrate {
		err = system.Migrate(ctx, cfg, os.Stdout)
	} else {
		err = system.RunWorker(ctx, cfg, logger)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
