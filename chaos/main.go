// Command chaos is smartcopy's fault suite (`make chaos`): a real Temporal
// dev server on a database file, real PostgreSQL, and the worker as a
// separate process, through a scripted trading session with several
// followers while the suite SIGKILLs the worker (at random moments, inside
// order placement, between placing an order and recording it), restarts
// the Temporal server, cuts every PostgreSQL connection, delivers
// duplicate, late and out-of-order trader events, and sends concurrent
// updates to one relationship. At the end every relationship must have
// caught up, every trader event must have produced exactly the orders it
// should, and the audit must pass. It prints its figures and exits
// non-zero on any problem.
//
// The short version runs in the normal test command (go test ./chaos);
// SMARTCOPY_CHAOS=full or -chaos.full runs this full one there instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	short := flag.Bool("short", false, "run the short version (the one the test command runs)")
	seed := flag.Int64("seed", 0, "seed of the session and the fault schedule (0: from the clock)")
	runs := flag.Int("runs", 1, "run the suite this many times in a row, each with the next seed")
	verbose := flag.Bool("v", false, "log every step and fault")
	keep := flag.Bool("keep", false, "keep the worker logs and the server's DB file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *seed == 0 {
		*seed = time.Now().UnixNano() % 1_000_000
	}
	failed := 0
	for i := range *runs {
		cfg := Full(*seed + int64(i))
		if *short {
			cfg = Short(*seed + int64(i))
		}
		cfg.Log, cfg.Verbose, cfg.KeepDir = os.Stdout, *verbose, *keep
		if *runs > 1 {
			fmt.Printf("run %d of %d\n", i+1, *runs)
		}
		f, err := Run(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			os.Exit(1)
		}
		f.Print(os.Stdout)
		if len(f.Problems) > 0 {
			failed++
		}
	}
	if failed > 0 {
		fmt.Printf("chaos: %d of %d run(s) failed\n", failed, *runs)
		os.Exit(1)
	}
}
