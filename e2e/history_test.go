package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/system"
	"smartcopy/workflows"
)

// These tests drive relationships through every kind of step on the real
// dev server, then replay each run's history against the current code (a
// replay failure here means the workflow is not deterministic). With
// SMARTCOPY_RECORD_HISTORIES=1 they also write the histories to
// workflows/testdata, where TestReplayRecordedHistories keeps replaying them
// after the code changes.

// runs walks a relationship's continue-as-new chain from its first run and
// returns each run's history.
func runs(t *testing.T, e *testenv.Env, workflowID, firstRunID string) []*historypb.History {
	t.Helper()
	ctx := context.Background()
	var out []*historypb.History
	runID := firstRunID
	for runID != "" {
		h, err := testenv.History(ctx, e.Client, workflowID, runID)
		must(t, err)
		out = append(out, h)
		runID = ""
		last := h.Events[len(h.Events)-1]
		if last.GetEventType() == enums.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
			runID = last.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		}
	}
	return out
}

// replayAndRecord replays each run against the current code and records it
// when asked to.
func replayAndRecord(t *testing.T, name string, histories []*historypb.History) {
	t.Helper()
	for i, h := range histories {
		file := name
		if len(histories) > 1 {
			file = fmt.Sprintf("%s_run%d", name, i+1)
		}
		must(t, testenv.MaybeRecord(h, file))
		r := worker.NewWorkflowReplayer()
		system.RegisterWorkflows(r, system.Defaults().Workflow)
		if err := r.ReplayWorkflowHistory(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), h); err != nil {
			t.Fatalf("run %d of %s does not replay: %v", i+1, name, err)
		}
	}
}

// publish publishes an event and waits until every given follower applied it.
func publish(t *testing.T, e *testenv.Env, ev copytrade.TraderEvent, followers ...string) {
	t.Helper()
	ctx := context.Background()
	rep, err := e.Publisher.Publish(ctx, ev)
	must(t, err)
	for _, f := range followers {
		e.WaitApplied(ctx, f, ev.TraderID, rep.Event.Seq)
	}
}

func openEv(e *testenv.Env, trader, id, inst string, side copytrade.Side, mode copytrade.MarginMode, lev, margin, price, size string) copytrade.TraderEvent {
	return copytrade.TraderEvent{EventID: e.ID(id), TraderID: trader, Kind: copytrade.EventOpen, InstID: inst, Side: side,
		MarginMode: mode, Leverage: d(lev), Margin: d(margin), Equity: d("10000"), Price: d(price), Size: d(size)}
}

func setup(t *testing.T, e *testenv.Env, trader string, deposits map[string]string) {
	t.Helper()
	ctx := context.Background()
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, "BTC-USDT-SWAP", d("60000")))
	must(t, e.Store.SetMarkPrice(ctx, "ETH-USDT-SWAP", d("3000")))
	for f, amount := range deposits {
		_, err := e.Store.Deposit(ctx, f, d(amount), "deposit/"+f)
		must(t, err)
	}
}

// A relationship's whole life with every kind of step: opens on both
// instruments and margin modes, a leverage sync and a margin sync, a partial
// close, raise and lower of the investment, a stop-loss setting, unfollow
// with a market close.
func TestHistoryLifecycle(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, f := e.ID("trader"), e.ID("alice")
	setup(t, e, trader, map[string]string{f: "5000"})
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("2000")})
	must(t, err)
	publish(t, e, openEv(e, trader, "o1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "1000", "60000", "8.33"), f)
	publish(t, e, openEv(e, trader, "o2", "ETH-USDT-SWAP", copytrade.Short, copytrade.Isolated, "10", "500", "3000", "16.66"), f)
	publish(t, e, copytrade.TraderEvent{EventID: e.ID("l1"), TraderID: trader, Kind: copytrade.EventLeverage, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, Leverage: d("4")}, f)
	publish(t, e, copytrade.TraderEvent{EventID: e.ID("m1"), TraderID: trader, Kind: copytrade.EventMargin, InstID: "ETH-USDT-SWAP",
		Side: copytrade.Short, MarginDelta: d("100")}, f)
	publish(t, e, copytrade.TraderEvent{EventID: e.ID("c1"), TraderID: trader, Kind: copytrade.EventClose, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, Price: d("60000"), Size: d("4.16")}, f)
	_, err = e.API.ChangeInvestment(ctx, f, trader, workflows.InvestmentRequest{Direction: workflows.Raise, Amount: d("500")})
	must(t, err)
	_, err = e.API.ChangeInvestment(ctx, f, trader, workflows.InvestmentRequest{Direction: workflows.Lower, Amount: d("200")})
	must(t, err)
	_, err = e.API.SetStopLoss(ctx, f, trader, workflows.StopLossRequest{StopLoss: d("900")})
	must(t, err)
	st := e.WaitState(ctx, f, trader, "syncs applied", func(s workflows.State) bool { return s.Counters.EventsApplied == 5 })
	var btc copytrade.Position
	for _, p := range st.Fund.Positions {
		if p.InstID == "BTC-USDT-SWAP" {
			btc = p
		}
	}
	requireEqual(t, "BTC leverage synced (R15)", "4", btc.Leverage)
	requireEqual(t, "investment after raise and lower (R18)", "2300", st.Settings.Investment)
	un, err := e.API.Unfollow(ctx, f, trader)
	must(t, err)
	if un.Status != workflows.StatusEnded {
		t.Fatalf("unfollow: %s", un.Status)
	}
	e.WaitClosed(ctx, f, trader)
	replayAndRecord(t, "lifecycle", runs(t, e, workflows.WorkflowID(f, trader), res.RelationshipID))
}

// Stop loss reached on a price move, picked up by the risk sweep (R20,
// R21), with the copy_close setting: the relationship opens nothing new,
// closes as the trader closes, and ends when flat (R1).
func TestHistoryStopLossCopyClose(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{Configure: func(c *system.Config) { c.RiskSweepInterval = 200 * time.Millisecond }})
	trader, f := e.ID("trader"), e.ID("bob")
	setup(t, e, trader, map[string]string{f: "2000"})
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("1000"),
		StopLoss: d("20"), StopMode: copytrade.CopyClose})
	must(t, err)
	publish(t, e, openEv(e, trader, "o1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "1000", "60000", "8.33"), f)
	// 0.83 contracts lose 0.83 x 0.01 x 3,000 = 24.9 at 57,000: past the
	// stop loss of 20 once fees are counted.
	must(t, e.Store.SetMarkPrice(ctx, "BTC-USDT-SWAP", d("57000")))
	e.WaitState(ctx, f, trader, "stopping on the stop loss", func(s workflows.State) bool {
		return s.Status == workflows.StatusStopping && s.StopReason == workflows.StopLoss
	})
	publish(t, e, openEv(e, trader, "o2", "ETH-USDT-SWAP", copytrade.Short, copytrade.Cross, "5", "500", "3000", "8"), f)
	publish(t, e, copytrade.TraderEvent{EventID: e.ID("c1"), TraderID: trader, Kind: copytrade.EventClose, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, Price: d("57000"), Size: d("8.33")}, f)
	result := e.WaitClosed(ctx, f, trader)
	if result.Status != workflows.StatusEnded || result.StopReason != workflows.StopLoss {
		t.Fatalf("result %+v", result)
	}
	orders, err := e.Store.Orders(ctx, res.RelationshipID)
	must(t, err)
	if len(orders) != 2 {
		t.Fatalf("want the open and the copied close only (no ETH open while stopping), got %d orders", len(orders))
	}
	replayAndRecord(t, "stop_loss_copy_close", runs(t, e, workflows.WorkflowID(f, trader), res.RelationshipID))
}

// Failed copies (R9, R11) are recorded and notified; a duplicate event is
// applied once (R24); unfollow with manual_close hands the position over
// and releases the rest (R1).
func TestHistoryFailuresAndManualClose(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, f := e.ID("trader"), e.ID("carol")
	setup(t, e, trader, map[string]string{f: "200"})
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("100"), StopMode: copytrade.ManualClose})
	must(t, err)
	publish(t, e, openEv(e, trader, "o1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "125", "100", "60000", "2"), f)
	publish(t, e, openEv(e, trader, "o2", "BTC-USDT-SWAP", copytrade.Long, copytrade.Isolated, "1", "10000", "60000", "16.66"), f)
	good := openEv(e, trader, "o3", "ETH-USDT-SWAP", copytrade.Short, copytrade.Cross, "10", "1000", "3000", "33.33")
	publish(t, e, good, f)
	publish(t, e, good, f)
	st := e.WaitState(ctx, f, trader, "three events applied", func(s workflows.State) bool { return s.Counters.EventsApplied == 3 })
	if st.Counters.OrdersFailed != 2 || st.Counters.OrdersFilled != 1 {
		t.Fatalf("want 2 failed copies (leverage_above_max, insufficient_funds) and 1 fill, got %+v", st.Counters)
	}
	un, err := e.API.Unfollow(ctx, f, trader)
	must(t, err)
	if un.Status != workflows.StatusEnded {
		t.Fatalf("unfollow: %s", un.Status)
	}
	e.WaitClosed(ctx, f, trader)
	inbox, err := e.Store.Inbox(ctx, f)
	must(t, err)
	kinds := map[string]int{}
	for _, n := range inbox {
		kinds[n.Kind]++
	}
	if kinds["copy_failed"] != 2 || kinds["released"] != 1 {
		t.Errorf("inbox kinds: %v", kinds)
	}
	replayAndRecord(t, "failures_manual_close", runs(t, e, workflows.WorkflowID(f, trader), res.RelationshipID))
}

// Continue-as-new carries the relationship across runs without losing or
// repeating an event: a low history limit forces several runs.
func TestHistoryContinueAsNew(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{Configure: func(c *system.Config) { c.Workflow.HistoryLimit = 40 }})
	trader, f := e.ID("trader"), e.ID("dave")
	setup(t, e, trader, map[string]string{f: "5000"})
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("1000")})
	must(t, err)
	var last int64
	for i := range 30 {
		ev := openEv(e, trader, fmt.Sprintf("o%d", i), "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "10", "60000", "0.1")
		if i%2 == 1 {
			ev = copytrade.TraderEvent{EventID: e.ID(fmt.Sprintf("c%d", i)), TraderID: trader, Kind: copytrade.EventClose,
				InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Price: d("60000"), Size: d("0.1")}
		}
		rep, err := e.Publisher.Publish(ctx, ev)
		must(t, err)
		last = rep.Event.Seq
	}
	st := e.WaitApplied(ctx, f, trader, last)
	// How many runs it takes depends on how the events arrive in bursts
	// (the history length is read once per workflow task); at least one.
	if st.Counters.ContinuedAsNew < 1 {
		t.Errorf("want a continue-as-new with a history limit of 40, got none")
	}
	if st.Counters.EventsApplied != 30 || st.Counters.Duplicates != 0 {
		t.Errorf("counters after continue-as-new: %+v", st.Counters)
	}
	_, err = e.API.Unfollow(ctx, f, trader)
	must(t, err)
	e.WaitClosed(ctx, f, trader)
	histories := runs(t, e, workflows.WorkflowID(f, trader), res.RelationshipID)
	if len(histories) < 2 {
		t.Fatalf("want at least 2 runs, got %d", len(histories))
	}
	replayAndRecord(t, "continue_as_new", histories[:2])
}
