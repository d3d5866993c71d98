// Command bench measures smartcopy's fan-out (issue 5): one lead trader,
// N followers, a script of trader events, and for each event the time from
// publish to the last follower's order committed in PostgreSQL, the
// per-follower latency distribution, copies per second and Temporal
// history events per copied event. In the same run it measures two
// baselines on their own trader and followers: the naive design (one
// signal-with-start per follower, one regular activity per event) and the
// floor (the same orders written straight into PostgreSQL), plus the
// direct baseline (smartcopy's own activity code with no Temporal). It
// checks every copy against the sizing rules and the ledger audit at the
// end, and exits non-zero when a copy is lost, doubled or wrong.
//
//	go run ./bench -h
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"smartcopy/copytrade"
)

type options struct {
	n                int
	rounds           int
	concurrency      int
	naiveConcurrency int
	floorConcurrency int
	workers          int
	setupConcurrency int
	dbConns          int
	maxActivities    int
	maxWorkflowTasks int
	wfPollers        int
	actPollers       int
	stickyCache      int
	grpcCompression  string
	followTimeout    time.Duration
	probe            bool
	baselines        string
	temporalAddress  string
	namespace        string
	databaseURL      string
	keep             bool
	json             bool
	profile          bool
	cpuProfile       string
	historySample    int
	eventTimeout     time.Duration
	pollInterval     time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	f := flag.NewFlagSet("bench", flag.ContinueOnError)
	f.SetOutput(stderr)
	f.IntVar(&o.n, "n", 1000, "followers per system (smartcopy and each baseline)")
	f.IntVar(&o.rounds, "rounds", 1, "rounds of the script after the warm-up open (each: open ETH, open BTC, close BTC 1/3, leverage ETH, close ETH 1/2)")
	f.IntVar(&o.concurrency, "concurrency", 64, "smartcopy publisher concurrency (api.Publisher.Concurrency)")
	f.IntVar(&o.naiveConcurrency, "naive-concurrency", 1, "naive publisher's signal-with-start calls in flight (1: one after another)")
	f.IntVar(&o.floorConcurrency, "floor-concurrency", 32, "orders in flight for the floor and direct baselines")
	f.IntVar(&o.workers, "workers", 1, "in-process smartcopy workers (and as many naive ones), each on its own client")
	f.IntVar(&o.setupConcurrency, "setup-concurrency", 32, "deposits and follows in flight during setup")
	f.IntVar(&o.dbConns, "db-conns", 32, "PostgreSQL pool size of the workers (DATABASE_MAX_CONNS)")
	f.IntVar(&o.maxActivities, "max-activities", 0, "worker MaxConcurrentActivityExecutionSize (0: smartcopy's default)")
	f.IntVar(&o.maxWorkflowTasks, "max-workflow-tasks", 0, "worker MaxConcurrentWorkflowTaskExecutionSize (0: smartcopy's default)")
	f.IntVar(&o.wfPollers, "wf-pollers", 0, "SMARTCOPY_WORKFLOW_TASK_POLLERS for every worker (0: smartcopy's default)")
	f.IntVar(&o.actPollers, "act-pollers", 0, "SMARTCOPY_ACTIVITY_TASK_POLLERS for every worker (0: smartcopy's default)")
	f.IntVar(&o.stickyCache, "sticky-cache", 0, "worker.SetStickyWorkflowCacheSize (0: SDK default 10,000)")
	f.StringVar(&o.grpcCompression, "grpc-compression", "none", "TEMPORAL_GRPC_COMPRESSION for every client: none (as the run command and tests use next to the server) or gzip")
	f.DurationVar(&o.followTimeout, "follow-timeout", 0, "set workflows.Config.FollowTimeout and wait it out after setup (for code before db8fcc6, whose follow-timeout timer fires even after the follow); 0: leave it")
	f.BoolVar(&o.probe, "probe", true, "after the script, measure the server's CPU per signal and workflow task with a workflow that does nothing (min(N, 300) of them)")
	f.StringVar(&o.baselines, "baselines", "naive,floor,direct", "baselines to run beside smartcopy: naive, floor, direct (comma-separated, or none)")
	f.StringVar(&o.temporalAddress, "temporal-address", "", "use this Temporal frontend instead of starting a dev server (its search attributes must be registered)")
	f.StringVar(&o.namespace, "namespace", "default", "namespace with -temporal-address")
	f.StringVar(&o.databaseURL, "database-url", "", "use this database (schema applied if missing) instead of creating a fresh one")
	f.BoolVar(&o.keep, "keep", false, "keep the database the bench created")
	f.BoolVar(&o.json, "json", false, "print the results as one JSON object on stdout (progress goes to stderr)")
	f.BoolVar(&o.profile, "profile", false, "print the profile: activity phases, Temporal timers, statements, database waits (samples pg_stat_activity, a little load)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the bench process (publisher and workers) over the measured steps to this file")
	f.IntVar(&o.historySample, "history-sample", 20, "relationships per system whose histories are read")
	f.DurationVar(&o.eventTimeout, "event-timeout", 0, "give up on an event after this long (0: 30 s + 30 ms per follower)")
	f.DurationVar(&o.pollInterval, "poll", 10*time.Millisecond, "how often the bench polls for the orders of an event")
	f.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench [flags]\n\n"+
			"Measures one trader event copied to N followers: smartcopy, the naive design and the\n"+
			"direct-PostgreSQL floor on the same machine, with correctness checks. Starts its own\n"+
			"Temporal dev server and database unless given ones.\n\nflags:\n")
		f.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		return o, err
	}
	if o.n < 1 || o.rounds < 1 || o.concurrency < 1 || o.naiveConcurrency < 1 || o.floorConcurrency < 1 || o.workers < 1 {
		return o, errors.New("-n, -rounds, -concurrency, -naive-concurrency, -floor-concurrency and -workers must be at least 1")
	}
	if o.eventTimeout == 0 {
		o.eventTimeout = 30*time.Second + time.Duration(o.n)*30*time.Millisecond
	}
	if o.grpcCompression != "none" && o.grpcCompression != "gzip" {
		return o, fmt.Errorf("-grpc-compression: none or gzip, got %q", o.grpcCompression)
	}
	for _, b := range strings.Split(o.baselines, ",") {
		switch strings.TrimSpace(b) {
		case "naive", "floor", "direct", "none", "":
		default:
			return o, fmt.Errorf("-baselines: unknown baseline %q (naive, floor, direct or none)", b)
		}
	}
	return o, nil
}

func (o options) baseline(name string) bool {
	for _, b := range strings.Split(o.baselines, ",") {
		if strings.TrimSpace(b) == name {
			return true
		}
	}
	return false
}

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, opts, os.Stdout, os.Stderr)
	os.Exit(code)
}

// run runs the benchmark and returns the exit code: 0 when every copy was
// right (whatever the speed), 1 when a copy was lost, doubled or wrong or
// the ledger audit failed, 2 when the run could not be made.
func run(ctx context.Context, opts options, stdout, stderr io.Writer) int {
	human := stdout
	if opts.json {
		human = stderr
	}
	runID := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	st, err := startStack(ctx, opts, runID, stderr)
	defer st.stop()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	b := &bench{opts: opts, st: st, runID: runID, log: stderr, t0: map[string]time.Time{}, inst: map[string]copytrade.Instrument{}}
	res, err := b.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		if res == nil {
			return 2
		}
		res.Problems = append(res.Problems, "run aborted: "+err.Error())
		res.OK = false
	}
	if opts.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 2
		}
	}
	printReport(human, res, opts)
	if !res.OK {
		return 1
	}
	return 0
}

// run sets up the systems, publishes the script and collects the results.
// A nil Result means nothing could be measured.
func (b *bench) run(ctx context.Context) (*Result, error) {
	for _, id := range []string{btc, eth} {
		inst, err := b.st.acts.Venue.Instrument(ctx, id)
		if err != nil {
			return nil, err
		}
		b.inst[id] = inst
	}
	b.script = buildScript(b.opts.rounds, b.inst)

	sc := &smartcopySystem{pop: newPopulation(b.runID, "sc", b.opts.n), publisher: b.st.publisher}
	b.systems = []copier{sc}
	if b.opts.baseline("naive") {
		b.systems = append(b.systems, &naiveSystem{pop: newPopulation(b.runID, "naive", b.opts.n), store: b.st.store,
			temporal: b.st.pubClient, taskQueue: b.st.naiveTQ, concurrency: b.opts.naiveConcurrency})
	}
	if b.opts.baseline("floor") {
		b.systems = append(b.systems, &floorSystem{pop: newPopulation(b.runID, "floor", b.opts.n), store: b.st.store,
			venue: b.st.acts.Venue, rec: b.st.rec, concurrency: b.opts.floorConcurrency})
	}
	if b.opts.baseline("direct") {
		b.systems = append(b.systems, &directSystem{pop: newPopulation(b.runID, "direct", b.opts.n), store: b.st.store,
			acts: b.st.acts, rec: b.st.rec, concurrency: b.opts.floorConcurrency})
	}
	res := &Result{RunID: b.runID, Code: codeRevision(), Options: optionsView(b.opts), Cores: numCPU(), OK: true}
	for _, sys := range b.systems {
		res.Systems = append(res.Systems, SystemView{Name: sys.Name(), Description: sys.Describe()})
	}
	b.logf("bench %s: N=%d, %d measured steps after 1 warm-up, systems: %s\n", b.runID, b.opts.n, len(b.script)-1, systemNames(b.systems))

	setup, err := b.setup(ctx)
	res.Setup = setup
	if err != nil {
		return res, err
	}
	b.cpu = &cpuMeter{serverPID: b.st.serverPID, dbName: b.st.dbName, conn: b.st.cpuConn}

	samples := map[string][]*follower{}
	before := map[string]map[string]int64{}
	measured := 0
	var stopProfile func()
	for _, s := range b.script {
		if err := b.st.store.SetMarkPrice(ctx, s.InstID, s.Price); err != nil {
			return res, err
		}
		if !s.Warmup() && stopProfile == nil && b.opts.cpuProfile != "" {
			stopProfile, err = startCPUProfile(b.opts.cpuProfile)
			if err != nil {
				return res, err
			}
		}
		for _, sys := range b.systems {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			r, err := b.measure(ctx, sys, s)
			res.Events = append(res.Events, r)
			printStep(b.log, r)
			if err != nil {
				return res, err
			}
			if len(r.Problems) > 0 {
				res.OK = false
			}
		}
		if s.Warmup() {
			for _, sys := range b.systems {
				if sys.WorkflowID(sys.Pop().Followers[0]) == "" {
					continue
				}
				samples[sys.Name()] = historySample(sys.Pop(), b.opts.historySample)
				before[sys.Name()], err = b.historyLengths(ctx, sys, samples[sys.Name()])
				if err != nil {
					return res, err
				}
			}
		} else {
			measured++
		}
	}
	if stopProfile != nil {
		stopProfile()
	}
	for _, sys := range b.systems {
		if sample := samples[sys.Name()]; len(sample) > 0 {
			res.History = append(res.History, b.historyProfile(ctx, sys, sample, before[sys.Name()], measured))
		}
	}
	if b.opts.probe && b.st.serverPID != 0 {
		b.logf("probe: the server's CPU per operation with %d idle workflows\n", min(b.opts.n, 300))
		res.Probe, err = b.probeServer(ctx, min(b.opts.n, 300))
		if err != nil {
			return res, err
		}
	}
	problems, err := b.finalCheck(ctx)
	if err != nil {
		return res, err
	}
	res.FinalProblems = problems
	if len(problems) > 0 {
		res.OK = false
	}
	res.summarize()
	return res, nil
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func systemNames(systems []copier) string {
	var names []string
	for _, s := range systems {
		names = append(names, s.Name())
	}
	return strings.Join(names, ", ")
}
