package main

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
)

// Result is one run, as -json prints it.
type Result struct {
	RunID string `json:"run_id"`
	// Code is the commit measured, with "+dirty" when production code
	// had uncommitted changes.
	Code    string           `json:"code"`
	Cores   int              `json:"cores"`
	Options map[string]any   `json:"options"`
	Systems []SystemView     `json:"systems"`
	Setup   SetupResult      `json:"setup"`
	Events  []EventResult    `json:"events"`
	Summary []Summary        `json:"summary"`
	Ratios  Ratios           `json:"ratios"`
	Goals   []Goal           `json:"goals"`
	History []HistoryProfile `json:"history"`
	// Probe is the server's CPU per operation (absent with -probe=false
	// or a given server, whose CPU the bench cannot see).
	Probe []ProbeResult `json:"probe,omitempty"`
	// Problems are every wrong, lost or doubled copy found, per event
	// and at the end; OK is false when there is any.
	Problems      []string `json:"problems,omitempty"`
	FinalProblems []string `json:"final_problems,omitempty"`
	OK            bool     `json:"ok"`
}

type SystemView struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Summary is one system over the measured steps (warm-up excluded):
// medians of the per-step figures, and the worst step.
type Summary struct {
	System           string  `json:"system"`
	Steps            int     `json:"steps"`
	Copies           int     `json:"copies"`
	LastMS           float64 `json:"last_ms_median"`
	LastMSWorst      float64 `json:"last_ms_worst"`
	P50MS            float64 `json:"p50_ms_median"`
	P95MS            float64 `json:"p95_ms_median"`
	P99MS            float64 `json:"p99_ms_median"`
	CopiesPerSec     float64 `json:"copies_per_sec_median"`
	PublishMS        float64 `json:"publish_ms_median"`
	SettleMS         float64 `json:"settle_ms_median"`
	CPUPerCopyMS     float64 `json:"cpu_per_copy_ms"`
	BenchCPUPerCopy  float64 `json:"bench_process_cpu_per_copy_ms"`
	ServerCPUPerCopy float64 `json:"temporal_server_cpu_per_copy_ms"`
	PGCPUPerCopy     float64 `json:"postgres_cpu_per_copy_ms"`
	Utilization      float64 `json:"machine_utilization_median"`
}

// Ratios compare smartcopy with the baselines (0 when one is missing).
type Ratios struct {
	ThroughputVsNaive float64 `json:"smartcopy_over_naive_throughput"`
	LastVsNaive       float64 `json:"smartcopy_over_naive_last_latency"`
	P50VsNaive        float64 `json:"smartcopy_over_naive_p50_latency"`
	LastVsFloor       float64 `json:"smartcopy_over_floor_last_latency"`
	ThroughputVsFloor float64 `json:"smartcopy_over_floor_throughput"`
	LastVsDirect      float64 `json:"smartcopy_over_direct_last_latency"`
}

// Goal is one of issue 5's goals.
type Goal struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
	Note string  `json:"note,omitempty"`
}

func (r *Result) summary(name string) *Summary {
	for i := range r.Summary {
		if r.Summary[i].System == name {
			return &r.Summary[i]
		}
	}
	return nil
}

func (r *Result) summarize() {
	bySystem := map[string][]EventResult{}
	var order []string
	for _, e := range r.Events {
		for _, p := range e.Problems {
			r.Problems = append(r.Problems, fmt.Sprintf("%s step %d (%s): %s", e.System, e.Step, e.Event, p))
		}
		if e.Warmup {
			continue
		}
		if _, ok := bySystem[e.System]; !ok {
			order = append(order, e.System)
		}
		bySystem[e.System] = append(bySystem[e.System], e)
	}
	r.Problems = append(r.Problems, r.FinalProblems...)
	for _, name := range order {
		evs := bySystem[name]
		s := Summary{System: name, Steps: len(evs)}
		var last, p50, p95, p99, cps, pub, settle, util []float64
		var cpuBench, cpuServer, cpuPG float64
		for _, e := range evs {
			s.Copies += e.Copies
			last = append(last, e.LastMS)
			p50 = append(p50, e.Latency.P50)
			p95 = append(p95, e.Latency.P95)
			p99 = append(p99, e.Latency.P99)
			cps = append(cps, e.CopiesPerSec)
			pub = append(pub, e.PublishMS)
			settle = append(settle, e.SettleMS)
			util = append(util, e.CPU.Utilization)
			cpuBench += e.CPU.BenchMS
			cpuServer += e.CPU.ServerMS
			cpuPG += e.CPU.PostgresMS + e.CPU.PGBackMS
		}
		s.LastMS, s.LastMSWorst = round3(median(last)), maxOf(last)
		s.P50MS, s.P95MS, s.P99MS = round3(median(p50)), round3(median(p95)), round3(median(p99))
		s.CopiesPerSec, s.PublishMS, s.SettleMS = round3(median(cps)), round3(median(pub)), round3(median(settle))
		s.Utilization = round3(median(util))
		if s.Copies > 0 {
			c := float64(s.Copies)
			s.BenchCPUPerCopy, s.ServerCPUPerCopy, s.PGCPUPerCopy = round3(cpuBench/c), round3(cpuServer/c), round3(cpuPG/c)
			s.CPUPerCopyMS = round3((cpuBench + cpuServer + cpuPG) / c)
		}
		r.Summary = append(r.Summary, s)
	}

	sc, naive, floor, direct := r.summary("smartcopy"), r.summary("naive"), r.summary("floor"), r.summary("direct")
	if sc == nil {
		return
	}
	if naive != nil {
		r.Ratios.ThroughputVsNaive = ratio(sc.CopiesPerSec, naive.CopiesPerSec)
		r.Ratios.LastVsNaive = ratio(sc.LastMS, naive.LastMS)
		r.Ratios.P50VsNaive = ratio(sc.P50MS, naive.P50MS)
	}
	if floor != nil {
		r.Ratios.LastVsFloor = ratio(sc.LastMS, floor.LastMS)
		r.Ratios.ThroughputVsFloor = ratio(sc.CopiesPerSec, floor.CopiesPerSec)
	}
	if direct != nil {
		r.Ratios.LastVsDirect = ratio(sc.LastMS, direct.LastMS)
	}

	note := ""
	if n, _ := r.Options["n"].(int); n != 1000 {
		note = fmt.Sprintf("goal is set for N=1000; this run has N=%d", n)
	}
	r.Goals = append(r.Goals,
		Goal{Name: "last follower's order filled after publish (median step)", Want: "<= 3000 ms", Got: sc.LastMS, Met: sc.LastMS <= 3000, Note: note},
		Goal{Name: "p50 follower latency (median step)", Want: "<= 1500 ms", Got: sc.P50MS, Met: sc.P50MS <= 1500, Note: note},
	)
	if naive != nil {
		r.Goals = append(r.Goals, Goal{Name: "throughput vs the naive design", Want: ">= 2x", Got: r.Ratios.ThroughputVsNaive, Met: r.Ratios.ThroughputVsNaive >= 2})
	}
	if floor != nil {
		r.Goals = append(r.Goals, Goal{Name: "last-order time vs the direct-PostgreSQL floor", Want: "<= 8x", Got: r.Ratios.LastVsFloor, Met: r.Ratios.LastVsFloor > 0 && r.Ratios.LastVsFloor <= 8})
	}
	for _, h := range r.History {
		if h.System == "smartcopy" {
			r.Goals = append(r.Goals, Goal{Name: "history events per copied event per follower", Want: "<= 6", Got: h.EventsPerCopy, Met: h.EventsPerCopy > 0 && h.EventsPerCopy <= 6})
		}
	}
}

func optionsView(o options) map[string]any {
	return map[string]any{
		"n": o.n, "rounds": o.rounds, "concurrency": o.concurrency, "naive_concurrency": o.naiveConcurrency,
		"floor_concurrency": o.floorConcurrency, "workers": o.workers, "db_conns": o.dbConns,
		"max_activities": o.maxActivities, "max_workflow_tasks": o.maxWorkflowTasks, "wf_pollers": o.wfPollers,
		"act_pollers": o.actPollers, "sticky_cache": o.stickyCache, "grpc_compression": o.grpcCompression, "follow_timeout": o.followTimeout.String(), "probe": o.probe, "baselines": o.baselines,
		"temporal_address": o.temporalAddress, "external_database": o.databaseURL != "", "profile": o.profile,
	}
}

func numCPU() int { return runtime.NumCPU() }

// codeRevision names the commit measured and whether the production
// packages differed from it.
func codeRevision() string {
	rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	out := strings.TrimSpace(string(rev))
	dirty, err := exec.Command("git", "status", "--porcelain", "--", "workflows", "activities", "api", "store",
		"venue", "system", "schema", "copytrade", "ledger").Output()
	if err == nil && len(strings.TrimSpace(string(dirty))) > 0 {
		out += "+dirty"
	}
	return out
}

const stepHeader = "step event           system       copies  publish    last     p50     p95     p99  copies/s   settle  cpu ms bench/server/pg"

func printStep(w io.Writer, r EventResult) {
	mark := " "
	if r.Warmup {
		mark = "*"
	}
	if r.Step == 0 && r.System == "smartcopy" {
		fmt.Fprintln(w, stepHeader)
	}
	flag := ""
	if len(r.Problems) > 0 {
		flag = "  WRONG: " + r.Problems[0]
	}
	fmt.Fprintf(w, "%3d%s %-15s %-10s %7d %8.0f %7.0f %7.0f %7.0f %7.0f %9.0f %8.0f  %5.0f/%5.0f/%5.0f%s\n",
		r.Step, mark, r.Event, r.System, r.Copies, r.PublishMS, r.LastMS, r.Latency.P50, r.Latency.P95, r.Latency.P99,
		r.CopiesPerSec, r.SettleMS, r.CPU.BenchMS, r.CPU.ServerMS, r.CPU.PostgresMS+r.CPU.PGBackMS, flag)
}

func printReport(w io.Writer, r *Result, opts options) {
	fmt.Fprintf(w, "\nsmartcopy fan-out bench %s (code %s): N=%d followers per system, %d core(s), publisher concurrency %d, %d worker(s)\n",
		r.RunID, r.Code, opts.n, r.Cores, opts.concurrency, opts.workers)
	for _, s := range r.Systems {
		fmt.Fprintf(w, "  %-10s %s\n", s.Name, s.Description)
	}
	fmt.Fprintf(w, "setup: dev server %.1f s, deposits %.1f s", r.Setup.ServerMS/1000, r.Setup.DepositsMS/1000)
	for _, name := range sortedKeys(r.Setup.FollowsMS) {
		fmt.Fprintf(w, ", %s follows %.1f s", name, r.Setup.FollowsMS[name]/1000)
	}
	fmt.Fprintf(w, " (smartcopy follow p50 %.0f ms, p99 %.0f ms)\n", r.Setup.FollowLatency.P50, r.Setup.FollowLatency.P99)

	fmt.Fprintf(w, "\nper step (* = warm-up; ms from publish start; last = last order committed):\n")
	for _, e := range r.Events {
		printStep(w, e)
	}

	fmt.Fprintf(w, "\nsummary over %d measured steps (medians; worst last in brackets):\n", len(r.Events)/max(len(r.Systems), 1)-1)
	fmt.Fprintln(w, "system      last ms (worst)      p50     p95     p99  copies/s  cpu ms per copy: total = bench + server + pg   util")
	for _, s := range r.Summary {
		fmt.Fprintf(w, "%-10s %8.0f (%6.0f) %8.0f %7.0f %7.0f %9.0f  %22.2f = %5.2f + %5.2f + %5.2f   %4.0f%%\n",
			s.System, s.LastMS, s.LastMSWorst, s.P50MS, s.P95MS, s.P99MS, s.CopiesPerSec,
			s.CPUPerCopyMS, s.BenchCPUPerCopy, s.ServerCPUPerCopy, s.PGCPUPerCopy, s.Utilization*100)
	}
	fmt.Fprintf(w, "\nratios: smartcopy/naive throughput %.2fx, last-order time %.2fx, p50 %.2fx; smartcopy/floor last-order time %.2fx (throughput %.2fx); smartcopy/direct last-order time %.2fx\n",
		r.Ratios.ThroughputVsNaive, r.Ratios.LastVsNaive, r.Ratios.P50VsNaive, r.Ratios.LastVsFloor, r.Ratios.ThroughputVsFloor, r.Ratios.LastVsDirect)

	fmt.Fprintln(w, "\nhistory (sampled relationships, measured steps):")
	for _, h := range r.History {
		fmt.Fprintf(w, "  %-10s %.2f events per copied event per follower (%d sampled)", h.System, h.EventsPerCopy, h.Sampled)
		if h.Problem != "" {
			fmt.Fprintf(w, " [%s]", h.Problem)
		}
		fmt.Fprintln(w)
		var parts []string
		for _, t := range sortedKeys(h.ByType) {
			parts = append(parts, fmt.Sprintf("%s %.2f", strings.ToLower(t), h.ByType[t]))
		}
		fmt.Fprintf(w, "             %s\n", strings.Join(parts, ", "))
		for _, name := range phaseNames {
			if d, ok := h.Phases[name]; ok {
				fmt.Fprintf(w, "             %-52s p50 %7.1f  p95 %7.1f  max %7.1f ms\n", name, d.P50, d.P95, d.Max)
			}
		}
	}

	if len(r.Probe) > 0 {
		fmt.Fprintln(w, "\nserver probe (a workflow that only receives signals; CPU ms per operation):")
		for _, p := range r.Probe {
			fmt.Fprintf(w, "  %-40s server %5.2f  bench process %5.2f  (call p50 %.1f ms, %d in %.0f ms)\n",
				p.Operation, p.ServerMS, p.BenchMS, p.CallP50MS, p.Count, p.WallMS)
		}
		if sc := r.summary("smartcopy"); sc != nil {
			fmt.Fprintf(w, "  %-40s server %5.2f  bench process %5.2f\n", "smartcopy copy (from the summary)", sc.ServerCPUPerCopy, sc.BenchCPUPerCopy)
		}
	}
	if opts.profile {
		printProfile(w, r)
	}

	fmt.Fprintln(w, "\ngoals (issue 5):")
	for _, g := range r.Goals {
		met := "NOT MET"
		if g.Met {
			met = "met"
		}
		note := ""
		if g.Note != "" {
			note = " (" + g.Note + ")"
		}
		fmt.Fprintf(w, "  %-58s want %-10s got %8.2f  %s%s\n", g.Name, g.Want, g.Got, met, note)
	}
	if r.OK {
		fmt.Fprintln(w, "\ncorrectness: OK (every follower one row per event, sizes per the sizing rules, positions as modelled, ledger audit clean)")
		return
	}
	fmt.Fprintf(w, "\ncorrectness: FAILED (%d problems)\n", len(r.Problems))
	for i, p := range r.Problems {
		if i == 30 {
			fmt.Fprintf(w, "  ... %d more\n", len(r.Problems)-30)
			break
		}
		fmt.Fprintln(w, "  "+p)
	}
}

// printProfile prints, for the first measured open of each system, where
// its time went: activity phases, Temporal SDK timers, statements and
// database waits.
func printProfile(w io.Writer, r *Result) {
	fmt.Fprintln(w, "\nprofile of the first measured step (an open), per system:")
	for _, e := range r.Events {
		if e.Step != 1 {
			continue
		}
		fmt.Fprintf(w, "\n[%s] %s: %d copies, last %.0f ms; CPU ms: bench %.0f, server %.0f, pg %.0f (+%.0f background), other %.0f, machine %.0f%% busy over %.0f ms\n",
			e.System, e.Event, e.Copies, e.LastMS, e.CPU.BenchMS, e.CPU.ServerMS, e.CPU.PostgresMS, e.CPU.PGBackMS, e.CPU.OtherMS, e.CPU.Utilization*100, e.CPU.WallMS)
		for _, a := range e.Activities {
			fmt.Fprintf(w, "  activity %-22s n=%-5d total p50 %6.2f mean %6.2f p99 %7.2f ms; schedule-to-start p50 %.2f ms\n",
				a.Type, a.Total.N, a.Total.P50, a.Total.Mean, a.Total.P99, a.ScheduleToStart.P50)
			for _, name := range sortedKeys(a.Phases) {
				d := a.Phases[name]
				fmt.Fprintf(w, "      %-24s mean %6.2f  p50 %6.2f  p99 %7.2f ms\n", name, d.Mean, d.P50, d.P99)
			}
		}
		if e.PoolWait.N > 0 {
			fmt.Fprintf(w, "  pool acquire: n=%d mean %.2f p99 %.2f max %.2f ms\n", e.PoolWait.N, e.PoolWait.Mean, e.PoolWait.P99, e.PoolWait.Max)
		}
		for _, k := range sortedKeys(e.Temporal) {
			d := e.Temporal[k]
			fmt.Fprintf(w, "  sdk %-88s n=%-5d p50 %6.2f p99 %7.2f ms\n", k, d.N, d.P50, d.P99)
		}
		for _, k := range sortedKeys(e.Counters) {
			fmt.Fprintf(w, "  sdk %-88s %d\n", k, e.Counters[k])
		}
		for i, s := range e.Statements {
			if i == 15 {
				break
			}
			fmt.Fprintf(w, "  sql %-17s n=%-5d total %7.1f mean %5.2f max %6.1f ms  %s\n", s.Phase, s.Count, s.TotalMS, s.MeanMS, s.MaxMS, s.SQL)
		}
		for _, ws := range e.DBWaits {
			fmt.Fprintf(w, "  db  %-22s %-28s %5.1f%% of busy-session samples, %.1f sessions on average\n", ws.State, ws.Wait, ws.Share*100, ws.Sessions)
		}
	}
}
