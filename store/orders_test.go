package store_test

import (
	"encoding/json"
	"errors"
	"testing"

	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/venue"
)

// A copy the rules refuse is recorded once with its reason and sizing
// inputs (R9, R11, R26); recording it again returns the first record.
func TestRecordRejectedOrder_R9_R26(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.deposit("alice", "1000")
	f.trader("t1", "10000")
	f.follow("r1", "alice", "t1", "1000")
	req := venue.OrderRequest{
		ClientOrderID: "r1/t1/e7", RelationshipID: "r1", FollowerID: "alice", TraderID: "t1", TraderEventID: "e7",
		InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Action: venue.Open, Size: d("0.2"), Leverage: d("5"),
		MarginMode: copytrade.Cross, LimitPrice: d("50250"),
		Sizing: copytrade.OpenPlan{Ratio: d("0.1"), TargetMargin: d("100"), Size: d("0.2"), Margin: d("20"), Fee: d("0.05")},
	}
	rej := &copytrade.Rejection{Reason: copytrade.ReasonInsufficientFunds, Detail: "needs 20.05 USDT, the copy fund has 3 available"}

	got, err := f.st.RecordRejectedOrder(f.ctx, req, rej)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != venue.Rejected || got.Reason != copytrade.ReasonInsufficientFunds || got.Detail != rej.Detail ||
		got.ClientOrderID != req.ClientOrderID || got.Replayed || got.FilledAt.IsZero() {
		t.Errorf("first record = %+v", got)
	}
	again, err := f.st.RecordRejectedOrder(f.ctx, req, &copytrade.Rejection{Reason: "other", Detail: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.Reason != copytrade.ReasonInsufficientFunds || !again.FilledAt.Equal(got.FilledAt) {
		t.Errorf("replay = %+v", again)
	}

	// A client order id the venue already filled is returned as filled.
	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "r1/t1/e8", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Open, size: "1", price: "50000", fee: "0.25", margin: "100"})
	filled := req
	filled.ClientOrderID = "r1/t1/e8"
	got, err = f.st.RecordRejectedOrder(f.ctx, filled, rej)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Replayed || got.Status != venue.Filled || !got.Price.Equal(d("50000")) || !got.Fee.Equal(d("0.25")) {
		t.Errorf("rejecting a filled order returned %+v", got)
	}

	if _, err := f.st.RecordRejectedOrder(f.ctx, req, nil); err == nil {
		t.Error("a rejection without a reason was recorded")
	}
	noID := req
	noID.ClientOrderID = ""
	_, err = f.st.RecordRejectedOrder(f.ctx, noID, rej)
	wantField(t, err, "client_order_id")

	orders, err := f.st.Orders(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != 2 {
		t.Fatalf("orders = %+v, want 2", orders)
	}
	o := orders[0]
	if o.ClientOrderID != "r1/t1/e7" || o.Status != venue.Rejected || o.Action != venue.Open || o.Side != copytrade.Long ||
		o.MarginMode != copytrade.Cross || o.TraderEventID != "e7" || o.LimitPrice == nil || !o.LimitPrice.Equal(d("50250")) ||
		!o.Size.Equal(d("0.2")) || !o.Leverage.Equal(d("5")) {
		t.Errorf("rejected order record = %+v", o)
	}
	var plan copytrade.OpenPlan
	if err := json.Unmarshal(o.Sizing, &plan); err != nil {
		t.Fatalf("sizing %s: %v", o.Sizing, err)
	}
	if !plan.Ratio.Equal(d("0.1")) || !plan.TargetMargin.Equal(d("100")) {
		t.Errorf("sizing = %+v", plan)
	}
	if orders[1].Sizing != nil || orders[1].LimitPrice != nil {
		t.Errorf("filled order without sizing or limit read back as %s, %v", orders[1].Sizing, orders[1].LimitPrice)
	}
	if _, err := f.st.Order(f.ctx, "nope"); !errors.Is(err, store.ErrUnknownOrder) {
		t.Errorf("unknown order: %v", err)
	}
}

// Closed positions and risk syncs, as the venue writes them, read back for
// the copy trading details (R26).
func TestPositionHistoryAndRiskSyncs_R26(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.exec(`insert into position_history (relationship_id, inst_id, side, max_size, avg_open_price, avg_close_price, gross_pnl, fees, outcome, opened_at)
		values ('r1', 'BTC-USDT-SWAP', 'long', 2, 50000, 51500, 30, 1.015, 'closed', now() - interval '1 hour'),
		       ('r1', 'ETH-USDT-SWAP', 'short', 5, 3000, null, 0, 0.75, 'handed_over', now()),
		       ('r2', 'ETH-USDT-SWAP', 'short', 5, 3000, 2900, 50, 0.75, 'closed', now())`)
	hist, err := f.st.PositionHistory(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("history = %+v", hist)
	}
	h := hist[0]
	if h.InstID != "BTC-USDT-SWAP" || h.Side != copytrade.Long || h.Outcome != "closed" || h.AvgClosePrice == nil ||
		!h.AvgClosePrice.Equal(d("51500")) || !h.AvgOpenPrice.Equal(d("50000")) || !h.GrossPnL.Equal(d("30")) || !h.Fees.Equal(d("1.015")) ||
		!h.OpenedAt.Before(h.ClosedAt) {
		t.Errorf("closed position = %+v", h)
	}
	if hist[1].Outcome != "handed_over" || hist[1].AvgClosePrice != nil {
		t.Errorf("handed over position = %+v", hist[1])
	}

	f.exec(`insert into risk_syncs (idempotency_key, relationship_id, trader_event_id, kind, inst_id, side, status, reason,
			leverage_before, leverage_after, margin_before, margin_after)
		values ('sync/r1/e5', 'r1', 'e5', 'leverage', 'ETH-USDT-SWAP', 'short', 'failed', 'insufficient_funds', 10, 10, 30, 30),
		       ('sync/r1/e6', 'r1', 'e6', 'margin', 'ETH-USDT-SWAP', 'short', 'skipped', '', null, null, null, null)`)
	syncs, err := f.st.RiskSyncs(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(syncs) != 2 {
		t.Fatalf("syncs = %+v", syncs)
	}
	s := syncs[0]
	if s.Key != "sync/r1/e5" || s.Kind != "leverage" || s.Status != venue.SyncFailed || s.Reason != copytrade.ReasonInsufficientFunds ||
		s.LeverageBefore == nil || !s.LeverageBefore.Equal(d("10")) || s.MarginAfter == nil || !s.MarginAfter.Equal(d("30")) {
		t.Errorf("failed sync = %+v", s)
	}
	if syncs[1].Status != venue.SyncSkipped || syncs[1].MarginBefore != nil {
		t.Errorf("skipped sync = %+v", syncs[1])
	}
}
