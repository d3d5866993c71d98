package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"smartcopy/audit"
	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/metrics"
	"smartcopy/store"
	"smartcopy/workflows"
)

// Scaling out: two worker processes, the real worker binary, on one task
// queue share eight followers' work; one is killed with SIGKILL in the
// middle of the session (no graceful stop: its workflow tasks, local copy
// activities and sticky caches die with it) and the other finishes
// everything. Nothing is lost and nothing is done twice: every follower
// has exactly one order per trader event, the audit (ledger, orders against
// events, workflows against the venue) agrees, and every fund is released.
// Both processes' JSON logs show they did work.
func TestTwoWorkerProcessesShareWorkAndSurviveAKill(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{NoWorker: true})
	t.Cleanup(func() {
		e.Client.TerminateWorkflow(context.Background(), workflows.RiskSweepID(e.Config.TaskQueue), "", "test ended")
	})
	bin := buildWorker(t)
	a := startWorkerProcess(t, e, bin, "a")
	b := startWorkerProcess(t, e, bin, "b")

	trader := e.ID("lead")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("60000")))
	must(t, e.Store.SetMarkPrice(ctx, ethSwap, d("3000")))
	var followers []string
	for i := range 8 {
		f := e.ID(fmt.Sprintf("f%d", i))
		followers = append(followers, f)
		_, err := e.Store.Deposit(ctx, f, d("2000"), "deposit/"+f)
		must(t, err)
		_, err = e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("1000")})
		must(t, err)
	}

	// Prices stay at the marks, so every copy fills (no spread protection)
	// and every close finds a position: one order per follower per event.
	events := []copytrade.TraderEvent{
		evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "1000", "10000", "60000", "8.33"),
		evOpen(ethSwap, copytrade.Short, copytrade.Isolated, "10", "500", "10000", "3000", "16.66"),
		evClose(btcSwap, copytrade.Long, "60000", "4.16"),
		evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "500", "10000", "60000", "4.17"),
		evClose(ethSwap, copytrade.Short, "3000", "16.66"),
		evOpen(ethSwap, copytrade.Long, copytrade.Cross, "5", "300", "10000", "3000", "5"),
		evClose(btcSwap, copytrade.Long, "60000", "8.34"),
		evClose(ethSwap, copytrade.Long, "3000", "5"),
	}
	const killAfter = 4 // events published before the kill
	var eventIDs []string
	publish := func(i int) int64 {
		ev := events[i]
		ev.EventID, ev.TraderID = e.ID(fmt.Sprintf("e%d", i+1)), trader
		eventIDs = append(eventIDs, ev.EventID)
		rep, err := e.Publisher.Publish(ctx, ev)
		must(t, err)
		if rep.Delivered != len(followers) {
			t.Fatalf("event %d delivered to %d relationships, want %d", i+1, rep.Delivered, len(followers))
		}
		return rep.Event.Seq
	}

	// The first events, applied everywhere with both workers up.
	var seq int64
	for i := range killAfter - 1 {
		seq = publish(i)
	}
	for _, f := range followers {
		e.WaitApplied(ctx, f, trader, seq)
	}
	before := map[string]int{}
	for _, p := range []*workerProcess{a, b} {
		before[p.name] = len(p.relationshipLines(t))
		if before[p.name] == 0 {
			t.Fatalf("worker %s logged no work for any relationship before the kill:\n%s", p.name, p.logText(t))
		}
		placed := p.scrapePlaced(t)
		if placed[`{kind="open"}`] == 0 {
			t.Errorf("worker %s placed no copy before the kill (its /metrics: %v)", p.name, placed)
		}
		t.Logf("worker %s before the kill: %d log lines about relationships, copies placed (its /metrics) %v",
			p.name, before[p.name], placed)
	}

	// Kill a while the next event is being copied, then publish the rest.
	publish(killAfter - 1)
	a.kill(t)
	for i := killAfter; i < len(events); i++ {
		seq = publish(i)
	}
	for _, f := range followers {
		st := e.WaitApplied(ctx, f, trader, seq)
		if st.Counters.OrdersFilled != int64(len(events)) || st.Counters.OrdersFailed != 0 {
			t.Errorf("%s: %d filled, %d failed, want %d and 0", f, st.Counters.OrdersFilled, st.Counters.OrdersFailed, len(events))
		}
	}

	// Exactly one order per follower per event, all filled.
	for _, f := range followers {
		rels, err := e.Store.Relationships(ctx, store.RelationshipFilter{FollowerID: f})
		must(t, err)
		if len(rels) != 1 {
			t.Fatalf("%s has %d relationships", f, len(rels))
		}
		orders, err := e.Store.Orders(ctx, rels[0].ID)
		must(t, err)
		perEvent := map[string]int{}
		for _, o := range orders {
			perEvent[o.TraderEventID]++
			if o.Status != "filled" {
				t.Errorf("%s order %s: %s %s", f, o.ClientOrderID, o.Status, o.Reason)
			}
		}
		for _, id := range eventIDs {
			if perEvent[id] != 1 {
				t.Errorf("%s has %d orders for event %s, want 1", f, perEvent[id], id)
			}
		}
		if len(orders) != len(eventIDs) {
			t.Errorf("%s has %d orders, want %d", f, len(orders), len(eventIDs))
		}
	}
	rep, err := audit.Run(ctx, e.API, audit.Options{})
	must(t, err)
	if !rep.OK() {
		t.Errorf("audit after the session: %q", rep.Differences)
	}

	// The survivor copied the rest: for every follower, the last event.
	copied := map[string]bool{}
	for _, l := range b.relationshipLines(t) {
		if l["msg"] == "copy filled" && l["trader_event_id"] == eventIDs[len(eventIDs)-1] {
			copied[l["WorkflowID"].(string)] = true
		}
	}
	if len(copied) != len(followers) {
		t.Errorf("worker b copied the last event for %d relationships, want %d", len(copied), len(followers))
	}

	// Flat after the last close: unfollowing releases every fund.
	for _, f := range followers {
		un, err := e.API.Unfollow(ctx, f, trader)
		must(t, err)
		if un.Status != workflows.StatusEnded || !un.Released.IsPositive() {
			t.Errorf("%s after unfollow: %s, released %s", f, un.Status, un.Released)
		}
	}
	ledgerReport, err := e.Store.Audit(ctx)
	must(t, err)
	if !ledgerReport.OK() {
		t.Errorf("ledger audit after release: %q", ledgerReport.Differences)
	}
	t.Logf("log lines about relationships: a %d (killed after %d events), b %d",
		len(a.relationshipLines(t)), killAfter, len(b.relationshipLines(t)))
}

// buildWorker builds ./worker into a temporary directory.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "smartcopy-worker")
	out, err := exec.Command("go", "build", "-o", bin, "smartcopy/worker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./worker: %v\n%s", err, out)
	}
	return bin
}

// workerProcess is one worker binary running on the test's task queue,
// its JSON logs in a file.
type workerProcess struct {
	name        string
	cmd         *exec.Cmd
	logPath     string
	metricsAddr string
	exited      chan struct{}
}

// startWorkerProcess runs the worker binary configured the way an operator
// configures it, by environment, and waits for its "worker started" line.
func startWorkerProcess(t *testing.T, e *testenv.Env, bin, name string) *workerProcess {
	t.Helper()
	p := &workerProcess{name: name, logPath: filepath.Join(t.TempDir(), name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	must(t, err)
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(),
		"TEMPORAL_ADDRESS="+e.Config.TemporalAddress,
		"TEMPORAL_NAMESPACE="+e.Config.TemporalNamespace,
		"DATABASE_URL="+e.DBURL,
		"SMARTCOPY_TASK_QUEUE="+e.Config.TaskQueue,
		// Other tests share the PostgreSQL server: a small pool each.
		"DATABASE_MAX_CONNS=8",
		"METRICS_ADDR=127.0.0.1:0",
	)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	must(t, p.cmd.Start())
	logFile.Close()
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("worker %s log (last lines):\n%s", p.name, tail(p.logText(t), 40))
		}
	})
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, l := range p.lines(t) {
			if l["msg"] == "worker started" {
				p.metricsAddr, _ = l["metrics_addr"].(string)
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("worker %s exited at start-up:\n%s", name, p.logText(t))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("worker %s did not start within a minute:\n%s", name, p.logText(t))
	return nil
}

// kill ends the process with SIGKILL: no graceful stop.
func (p *workerProcess) kill(t *testing.T) {
	t.Helper()
	must(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

func (p *workerProcess) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	must(t, err)
	return string(b)
}

// lines are the process's JSON log lines; a line cut short by the kill is
// skipped.
func (p *workerProcess) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.logText(t)))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// relationshipLines are the log lines about one relationship: the work
// this process did for followers.
func (p *workerProcess) relationshipLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range p.lines(t) {
		if id, _ := l["relationship_id"].(string); id != "" {
			out = append(out, l)
		}
	}
	return out
}

// scrapePlaced is the process's copies-placed counters from its /metrics.
func (p *workerProcess) scrapePlaced(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for series, v := range scrape(t, p.metricsAddr) {
		if strings.HasPrefix(series, metrics.CopiesPlaced) {
			out[strings.TrimPrefix(series, metrics.CopiesPlaced)] = v
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
