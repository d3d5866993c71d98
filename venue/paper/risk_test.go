package paper_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/venue"
)

func (e *env) setLeverage(rel, key, inst string, side copytrade.Side, lev string) venue.SyncResult {
	e.t.Helper()
	res, err := e.v.SetLeverage(e.ctx, venue.LeverageRequest{Key: key, RelationshipID: rel, TraderEventID: "ev-" + key,
		InstID: inst, Side: side, Leverage: d(lev)})
	if err != nil {
		e.t.Fatalf("SetLeverage %s: %v", key, err)
	}
	return res
}

func (e *env) adjustMargin(rel, key, inst string, side copytrade.Side, delta string) venue.SyncResult {
	e.t.Helper()
	res, err := e.v.AdjustMargin(e.ctx, venue.MarginRequest{Key: key, RelationshipID: rel, TraderEventID: "ev-" + key,
		InstID: inst, Side: side, Delta: d(delta)})
	if err != nil {
		e.t.Fatalf("AdjustMargin %s: %v", key, err)
	}
	return res
}

func wantSync(t *testing.T, res venue.SyncResult, status venue.SyncStatus, reason string) {
	t.Helper()
	if res.Status != status || res.Reason != reason {
		t.Fatalf("sync: %s %q (%s), want %s %q", res.Status, res.Reason, res.Detail, status, reason)
	}
	if res.Detail == "" {
		t.Errorf("sync %s %s has no detail", status, reason)
	}
}

// syncRecord reads a risk_syncs row.
func (e *env) syncRecord(key string) (status, reason string, levBefore, levAfter, marginBefore, marginAfter decimal.NullDecimal) {
	e.t.Helper()
	if err := e.pool.QueryRow(e.ctx, `select status, reason, leverage_before, leverage_after, margin_before, margin_after
		from risk_syncs where idempotency_key = $1`, key).Scan(&status, &reason, &levBefore, &levAfter, &marginBefore, &marginAfter); err != nil {
		e.t.Fatalf("risk_syncs %s: %v", key, err)
	}
	return
}

// TestSetLeverage_R15: the follower's position takes the trader's new
// leverage; its margin becomes notional at the average open price over the
// leverage, taken from or released to the fund's available amount.
func TestSetLeverage_R15(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")
	wantFilled(t, e.place(openReq("r1", "r1:open", btc, copytrade.Long, "0.83", "5", copytrade.Isolated)))

	// 498 notional at 3x needs 166: 66.4 more from the 900.151 available.
	res := e.setLeverage("r1", "lev1", btc, copytrade.Long, "3")
	wantSync(t, res, venue.SyncApplied, "")
	eq(t, "before leverage", res.Before.Leverage, d("5"))
	eq(t, "before margin", res.Before.Margin, d("99.6"))
	eq(t, "after leverage", res.Position.Leverage, d("3"))
	eq(t, "after margin", res.Position.Margin, d("166"))
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "positions.leverage", p.Leverage, d("3"))
	eq(t, "positions.margin", p.Margin, d("166"))
	status, reason, lb, la, mb, ma := e.syncRecord("lev1")
	if status != "applied" || reason != "" || !lb.Decimal.Equal(d("5")) || !la.Decimal.Equal(d("3")) ||
		!mb.Decimal.Equal(d("99.6")) || !ma.Decimal.Equal(d("166")) {
		t.Errorf("risk_syncs lev1: %s %q %v %v %v %v", status, reason, lb, la, mb, ma)
	}
	eq(t, "fund untouched (margin stays in the fund)", e.balance(ledger.Fund("r1")), d("999.751"))

	// The same key again is the same change.
	again := e.setLeverage("r1", "lev1", btc, copytrade.Long, "3")
	if again.Status != res.Status || again.Detail != res.Detail || !again.Position.Margin.Equal(d("166")) {
		t.Errorf("replay = %+v, want %+v", again, res)
	}
	p, _ = e.position("r1", btc, copytrade.Long)
	eq(t, "margin after replay", p.Margin, d("166"))

	// A higher leverage releases margin.
	res = e.setLeverage("r1", "lev2", btc, copytrade.Long, "10")
	wantSync(t, res, venue.SyncApplied, "")
	eq(t, "margin at 10x", res.Position.Margin, d("49.8"))
	// 7x: 498 / 7 rounded up.
	res = e.setLeverage("r1", "lev3", btc, copytrade.Long, "7")
	eq(t, "margin at 7x", res.Position.Margin, d("71.14285715"))

	wantSync(t, e.setLeverage("r1", "lev4", btc, copytrade.Long, "7"), venue.SyncSkipped, "")
	wantSync(t, e.setLeverage("r1", "lev5", btc, copytrade.Long, "125"), venue.SyncFailed, copytrade.ReasonLeverageAboveMax)
	wantSync(t, e.setLeverage("r1", "lev6", btc, copytrade.Long, "0"), venue.SyncFailed, copytrade.ReasonInvalidLeverage)
	res = e.setLeverage("r1", "lev7", eth, copytrade.Long, "3")
	wantSync(t, res, venue.SyncSkipped, copytrade.ReasonNoPosition)
	if res.Position.InstID != eth || !res.Position.Size.IsZero() {
		t.Errorf("skipped result position %+v", res.Position)
	}
	p, _ = e.position("r1", btc, copytrade.Long)
	eq(t, "leverage after refusals", p.Leverage, d("7"))
	if n := e.count(`select count(*) from risk_syncs where relationship_id = 'r1'`); n != 7 {
		t.Errorf("%d risk_syncs rows, want 7 (every outcome recorded)", n)
	}
}

// TestSetLeverageShortfall_R15: a lower leverage the fund cannot cover
// fails with the shortfall and changes nothing; with more funds, the retry
// (a new key) applies. Cross positions follow too.
func TestSetLeverageShortfall_R15(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "100")
	e.mark(btc, "60000")
	wantFilled(t, e.place(openReq("r1", "r1:open", btc, copytrade.Long, "0.83", "5", copytrade.Cross)))
	// Available 100 - 0.249 - 99.6 = 0.151; at 2x the margin is 249, 149.4
	// more: short by 149.249.
	res := e.setLeverage("r1", "r1:ev9", btc, copytrade.Long, "2")
	wantSync(t, res, venue.SyncFailed, copytrade.ReasonInsufficientFunds)
	eq(t, "shortfall", res.Shortfall, d("149.249"))
	eq(t, "position margin in the result", res.Position.Margin, d("99.6"))
	eq(t, "position leverage in the result", res.Position.Leverage, d("5"))
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "positions.leverage", p.Leverage, d("5"))
	eq(t, "positions.margin", p.Margin, d("99.6"))
	status, _, _, la, _, ma := e.syncRecord("r1:ev9")
	if status != "failed" || !la.Decimal.Equal(d("2")) || !ma.Decimal.Equal(d("249")) {
		t.Errorf("risk_syncs: %s, asked %v / %v, want failed asking 2x / 249", status, la, ma)
	}
	again := e.setLeverage("r1", "r1:ev9", btc, copytrade.Long, "2")
	if again.Status != venue.SyncFailed || !again.Shortfall.Equal(d("149.249")) || again.Detail != res.Detail {
		t.Errorf("replay = %+v, want %+v", again, res)
	}

	e.fund("r1", "f-r1", "raise/r1/1", "200")
	res = e.setLeverage("r1", "r1:ev9/retry-1", btc, copytrade.Long, "2")
	wantSync(t, res, venue.SyncApplied, "")
	p, _ = e.position("r1", btc, copytrade.Long)
	eq(t, "positions.margin after retry", p.Margin, d("249"))
	if p.MarginMode != "cross" {
		t.Errorf("margin mode %s", p.MarginMode)
	}
}

// TestAdjustMargin_R16: isolated positions take margin from and give it
// back to the fund's available amount; removals stop at the maintenance
// margin; cross positions are skipped.
func TestAdjustMargin_R16(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")
	e.mark(eth, "3000")
	wantFilled(t, e.place(openReq("r1", "r1:open", btc, copytrade.Long, "0.83", "5", copytrade.Isolated)))

	// The trader added 10% to their margin: the follower adds 9.96.
	delta := copytrade.ProportionalMarginDelta(d("100"), d("99.6"), d("1000"))
	res := e.adjustMargin("r1", "m1", btc, copytrade.Long, delta.String())
	wantSync(t, res, venue.SyncApplied, "")
	eq(t, "before", res.Before.Margin, d("99.6"))
	eq(t, "after", res.Position.Margin, d("109.56"))
	again := e.adjustMargin("r1", "m1", btc, copytrade.Long, delta.String())
	if again.Status != venue.SyncApplied || !again.Position.Margin.Equal(d("109.56")) || again.Detail != res.Detail {
		t.Errorf("replay = %+v", again)
	}

	wantSync(t, e.adjustMargin("r1", "m2", btc, copytrade.Long, "-50"), venue.SyncApplied, "")
	// Maintenance: 498 x 0.004 = 1.992.
	res = e.adjustMargin("r1", "m3", btc, copytrade.Long, "-58")
	wantSync(t, res, venue.SyncFailed, copytrade.ReasonMarginBelowMaintenance)
	eq(t, "margin kept", res.Position.Margin, d("59.56"))
	wantSync(t, e.adjustMargin("r1", "m4", btc, copytrade.Long, "-59.56"), venue.SyncFailed, copytrade.ReasonMarginBelowZero)
	wantSync(t, e.adjustMargin("r1", "m5", btc, copytrade.Long, "-70"), venue.SyncFailed, copytrade.ReasonMarginBelowZero)
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "margin after refused removals", p.Margin, d("59.56"))
	// Down to exactly the maintenance margin is allowed.
	res = e.adjustMargin("r1", "m6", btc, copytrade.Long, "-57.568")
	wantSync(t, res, venue.SyncApplied, "")
	eq(t, "at maintenance", res.Position.Margin, d("1.992"))

	// Available: 999.751 - 1.992 = 997.759.
	res = e.adjustMargin("r1", "m7", btc, copytrade.Long, "10000")
	wantSync(t, res, venue.SyncFailed, copytrade.ReasonInsufficientFunds)
	eq(t, "shortfall", res.Shortfall, d("9002.241"))
	p, _ = e.position("r1", btc, copytrade.Long)
	eq(t, "margin after shortfall", p.Margin, d("1.992"))
	// Exactly the available amount is enough.
	res = e.adjustMargin("r1", "m8", btc, copytrade.Long, "997.759")
	wantSync(t, res, venue.SyncApplied, "")
	eq(t, "all in", res.Position.Margin, d("999.751"))
	wantSync(t, e.adjustMargin("r1", "m8b", btc, copytrade.Long, "0"), venue.SyncSkipped, "")

	e.fund("r2", "f-r2", "follow/r2", "1000")
	wantSync(t, e.adjustMargin("r2", "m9", eth, copytrade.Short, "5"), venue.SyncSkipped, copytrade.ReasonNoPosition)
	wantFilled(t, e.place(openReq("r2", "r2:open", eth, copytrade.Short, "1", "10", copytrade.Cross)))
	wantSync(t, e.adjustMargin("r2", "m10", eth, copytrade.Short, "5"), venue.SyncSkipped, copytrade.ReasonMarginModeMismatch)
	wantSync(t, e.adjustMargin("r2", "m11", btc, copytrade.Short, "5"), venue.SyncSkipped, copytrade.ReasonNoPosition)
	status, reason, lb, _, _, _ := e.syncRecord("m11")
	if status != "skipped" || reason != copytrade.ReasonNoPosition || lb.Valid {
		t.Errorf("risk_syncs m11: %s %q before %v", status, reason, lb)
	}
}

// TestAdjustMarginConcurrentRetries_R16: retries of one margin change
// racing each other apply it once.
func TestAdjustMarginConcurrentRetries_R16(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")
	wantFilled(t, e.place(openReq("r1", "r1:open", btc, copytrade.Long, "0.83", "5", copytrade.Isolated)))
	const n = 6
	results := make([]venue.SyncResult, n)
	errs := make([]error, n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			results[i], errs[i] = e.v.AdjustMargin(e.ctx, venue.MarginRequest{Key: "m1", RelationshipID: "r1",
				TraderEventID: "ev", InstID: btc, Side: copytrade.Long, Delta: d("10")})
		}()
	}
	for range n {
		<-done
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		wantSync(t, results[i], venue.SyncApplied, "")
		eq(t, "margin reported", results[i].Position.Margin, d("109.6"))
	}
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "margin applied once", p.Margin, d("109.6"))
}
