package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Figures are what a run did and found; Print is the suite's report.
type Figures struct {
	Name string
	Seed int64

	Followers, Events, Published, Signalled, OutOfOrder int
	// Duplicates are deliveries of an event already delivered: published
	// again, or signalled again later straight to a workflow.
	Duplicates int

	Kills, KillsInPlacement, KillsAfterPlacement, KillsRandom int
	// KillsWithTxOpen counts kills at a moment the worker had a database
	// transaction or statement running.
	KillsWithTxOpen int
	// WorkerExits counts worker processes that exited while running
	// without being killed (a failure); WorkerStartFailures those that
	// gave up starting, say while Temporal restarted. The supervisor
	// starts another either way. Workers counts the processes started.
	WorkerExits, WorkerStartFailures, Workers int
	Restarts                                  int
	Cuts                                      int
	ConnectionsCut                            int
	Outages                                   int
	Retries                                   int

	Updates, Refusals, Concurrent, UnfollowsInFlight, StopLosses, LateFollows int

	OrdersExpected, OrdersPlaced, OrdersFilled, OrdersRejected int
	SyncsExpected, SyncsRecorded, SyncRetries                  int

	// What the workflows counted (state query), summed.
	WFDuplicates, WFLate, WFGaps, WFInvalid, WFContinued int64

	AuditChecks int
	AuditOK     bool
	Elapsed     time.Duration
	Problems    []string
	// Diagnostics is what helps find a problem's cause: the end of the
	// last worker's log.
	Diagnostics string

	mu      sync.Mutex
	log     io.Writer
	verbose bool
	began   time.Time
}

// note logs progress when verbose.
func (f *Figures) note(format string, args ...any) {
	if !f.verbose || f.log == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Fprintf(f.log, "  chaos %6.1fs: "+format+"\n", append([]any{time.Since(f.began).Seconds()}, args...)...)
}

func (f *Figures) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Problems = append(f.Problems, fmt.Sprintf(format, args...))
}

// Print writes the figures.
func (f *Figures) Print(w io.Writer) {
	fmt.Fprintf(w, "chaos %s (seed %d) in %s\n", f.Name, f.Seed, f.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(w, "  events:     %d trader events (%d published, %d recorded and signalled straight to the workflows, %d of those out of order), %d followers (%d joined late with copy-existing)\n",
		f.Events, f.Published, f.Signalled, f.OutOfOrder, f.Followers, f.LateFollows)
	fmt.Fprintf(w, "  duplicates: %d injected (published again or signalled again late); workflows dropped %d duplicates, %d late, skipped %d gaps, %d invalid\n",
		f.Duplicates, f.WFDuplicates, f.WFLate, f.WFGaps, f.WFInvalid)
	fmt.Fprintf(w, "  kills:      %d SIGKILLs of the worker (%d inside order placement, %d between placing and recording, %d at random moments; %d with a transaction open)\n",
		f.Kills, f.KillsInPlacement, f.KillsAfterPlacement, f.KillsRandom, f.KillsWithTxOpen)
	fmt.Fprintf(w, "  workers:    %d processes started; %d exited while running, %d gave up starting (Temporal down) and were started again\n",
		f.Workers, f.WorkerExits, f.WorkerStartFailures)
	fmt.Fprintf(w, "  restarts:   %d Temporal dev server restarts (DB file kept)\n", f.Restarts)
	fmt.Fprintf(w, "  database:   %d PostgreSQL connection cuts (%d connections terminated), %d outages (connections refused)\n", f.Cuts, f.ConnectionsCut, f.Outages)
	fmt.Fprintf(w, "  updates:    %d (%d refused with a reason): raise and lower at once %d times, unfollow while an open was copied %d, stop loss reached %d; %d calls retried after a fault\n",
		f.Updates, f.Refusals, f.Concurrent, f.UnfollowsInFlight, f.StopLosses, f.Retries)
	fmt.Fprintf(w, "  orders:     expected %d, placed %d (%d filled, %d rejected)\n", f.OrdersExpected, f.OrdersPlaced, f.OrdersFilled, f.OrdersRejected)
	fmt.Fprintf(w, "  syncs:      expected %d, recorded %d (+%d retries after funds were added)\n", f.SyncsExpected, f.SyncsRecorded, f.SyncRetries)
	fmt.Fprintf(w, "  workflows:  %d continue-as-new\n", f.WFContinued)
	audit := "FAILED"
	if f.AuditOK {
		audit = "passed"
	}
	fmt.Fprintf(w, "  audit:      %s (%d checks)\n", audit, f.AuditChecks)
	for _, p := range f.Problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n", p)
	}
	if len(f.Problems) == 0 {
		fmt.Fprintf(w, "  result:     PASS\n")
	} else {
		fmt.Fprintf(w, "%s\n  result:     FAIL (%d problems)\n", f.Diagnostics, len(f.Problems))
	}
}
