package e2e

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/metrics"
	"smartcopy/system"
	"smartcopy/workflows"
)

// The worker's /metrics, scraped over HTTP from a worker started the way
// the worker binary starts it (system.StartWorker) with METRICS_ADDR on a
// free port: smartcopy's counters move by exactly what the test did, and the
// Temporal SDK's metrics are on the same endpoint.
//
// Two followers copy one open (2 placed, 2 latencies) and fail one with
// spread protection (2 failed); a price drop stops one on its stop loss
// (1 stop loss, 1 release); the other unfollows (a second release). The
// market closes at the stop and the unfollow are not copies of a trader
// event and do not count as placed.
func TestWorkerMetrics(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{NoWorker: true})
	cfg := e.Config
	cfg.MetricsAddr = "127.0.0.1:0"
	logs := &syncBuffer{}
	proc, err := system.StartWorker(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	must(t, err)
	t.Cleanup(proc.Stop)
	t.Cleanup(func() {
		e.Client.TerminateWorkflow(context.Background(), workflows.RiskSweepID(cfg.TaskQueue), "", "test ended")
		if t.Failed() {
			t.Logf("worker logs:\n%s", logs.String())
		}
	})
	if proc.MetricsAddr == nil {
		t.Fatal("metrics on, but no address")
	}
	addr := proc.MetricsAddr.String()

	trader, ann, bob := e.ID("lead"), e.ID("ann"), e.ID("bob")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("60000")))
	for _, f := range []string{ann, bob} {
		_, err := e.Store.Deposit(ctx, f, d("1500"), "deposit/"+f)
		must(t, err)
	}
	_, err = e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: ann, TraderID: trader, Investment: d("1000")})
	must(t, err)
	_, err = e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: bob, TraderID: trader, Investment: d("1000"), StopLoss: d("20")})
	must(t, err)

	// Each opens 0.83 contracts at 60,000 (the seed's example).
	pub := func(id string, ev copytrade.TraderEvent) int64 {
		ev.EventID, ev.TraderID = e.ID(id), trader
		rep, err := e.Publisher.Publish(ctx, ev)
		must(t, err)
		if rep.Delivered != 2 {
			t.Fatalf("%s delivered to %d relationships, want 2", id, rep.Delivered)
		}
		return rep.Event.Seq
	}
	pub("open", evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "1000", "10000", "60000", "8.33"))
	// The trader bought at 59,000; at a 60,000 mark the copy would pay 1.7%
	// more, beyond the 0.5% spread protection (R10).
	seq := pub("dear", evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "500", "10000", "59000", "4.2"))
	for _, f := range []string{ann, bob} {
		st := e.WaitApplied(ctx, f, trader, seq)
		if st.Counters.OrdersFilled != 1 || st.Counters.OrdersFailed != 1 {
			t.Fatalf("%s: filled %d failed %d, want 1 and 1", f, st.Counters.OrdersFilled, st.Counters.OrdersFailed)
		}
	}

	// 57,000: bob's net PnL is (57,000 - 60,000) x 0.83 x 0.01 - 0.249 =
	// -25.149, past his 20 USDT stop loss; the sweep tells him (R20, R21).
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("57000")))
	bobEnd := e.WaitClosed(ctx, bob, trader)
	if bobEnd.StopReason != workflows.StopLoss {
		t.Fatalf("bob ended with %q, want stop_loss", bobEnd.StopReason)
	}
	annEnd, err := e.API.Unfollow(ctx, ann, trader)
	must(t, err)
	if annEnd.Status != workflows.StatusEnded {
		t.Fatalf("ann after unfollow: %s", annEnd.Status)
	}

	got := scrape(t, addr)
	for series, want := range map[string]float64{
		metrics.CopiesPlaced + `{kind="open"}`:                2,
		metrics.CopiesFailed + `{reason="spread_protection"}`: 2,
		metrics.EventToFill + `_count{kind="open"}`:           2,
		metrics.StopLosses:                                    1,
		metrics.FundsReleased:                                 2,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	for series := range got {
		if strings.HasPrefix(series, metrics.CopiesPlaced+`{kind="close"}`) {
			t.Errorf("%s present: the market closes at stop and unfollow are not copies", series)
		}
	}
	released := bobEnd.Released.Add(annEnd.Released).InexactFloat64()
	if v := got[metrics.FundsReleasedUSDT]; math.Abs(v-released) > 1e-6 {
		t.Errorf("%s = %v, want %v (bob %s + ann %s)", metrics.FundsReleasedUSDT, v, released, bobEnd.Released, annEnd.Released)
	}
	// The latency is from publishing to the fill, on one machine: well
	// under the minute the test allows.
	if sum := got[metrics.EventToFill+`_sum{kind="open"}`]; sum <= 0 || sum > 120 {
		t.Errorf("event-to-fill sum %v s for two fills", sum)
	}

	// The SDK's own metrics, through the OpenTelemetry handler.
	for _, prefix := range []string{"temporal_request", "temporal_workflow_task_", "temporal_activity_", "temporal_long_request"} {
		found := false
		for series := range got {
			if strings.HasPrefix(series, prefix) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no SDK metric named %s* on /metrics", prefix)
		}
	}
}

// scrape reads /metrics into series (name and labels, as written) → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	must(t, sc.Err())
	return out
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
