package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/ledger"
	"smartcopy/store"
	"smartcopy/system"
	"smartcopy/workflows"
)

// Focused end-to-end tests of rules the session (session_test.go) does not
// show, or shows only on one path. Figures are worked by hand in comments.

// R5: with copy-existing on, the trader's positions at follow time are
// copied at market, sized from the trader's current margin and equity (the
// book, not the original orders); with it off nothing opens until the
// trader's next open. An existing position has no trader fill to protect,
// so no spread-protection limit is set on its copy.
func TestCopyExistingOnFollow_R5(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, ann, ben := e.ID("lead"), e.ID("ann"), e.ID("ben")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("60000")))
	must(t, e.Store.SetMarkPrice(ctx, ethSwap, d("3000")))
	for _, f := range []string{ann, ben} {
		_, err := e.Store.Deposit(ctx, f, d("1000"), "deposit/"+f)
		must(t, err)
	}
	pub := func(id string, ev copytrade.TraderEvent) int64 {
		ev.EventID, ev.TraderID = e.ID(id), trader
		rep, err := e.Publisher.Publish(ctx, ev)
		must(t, err)
		return rep.Event.Seq
	}
	// Before anyone follows: a BTC long of 8 contracts on 1,000 margin, a
	// quarter of it closed (the book keeps 6 contracts on 750 margin), and
	// an ETH short on 500 margin reported with equity 12,500.
	pub("b1", evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "1000", "10000", "60000", "8"))
	pub("b2", evClose(btcSwap, copytrade.Long, "60000", "2"))
	pub("b3", evOpen(ethSwap, copytrade.Short, copytrade.Isolated, "10", "500", "12500", "3000", "16.66"))
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("61000")))

	resAnn, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: ann, TraderID: trader, Investment: d("1000"), CopyExisting: true})
	must(t, err)
	resBen, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: ben, TraderID: trader, Investment: d("1000")})
	must(t, err)
	st := e.WaitState(ctx, ann, trader, "existing positions copied", func(s workflows.State) bool {
		return s.CopiedExisting && len(s.Fund.Positions) == 2
	})
	// BTC long: ratio 750 / 12,500 = 6%, margin 60 at 5x → 300 / 610 =
	// 0.4918 → 0.49 contracts at the 61,000 mark: notional 298.9, margin
	// 59.78, fee 0.14945. ETH short: 500 / 12,500 = 4%, margin 40 at 10x
	// → 400 / 300 = 1.333 → 1.33: notional 399, margin 39.9, fee 0.1995.
	want := map[string][3]string{
		btcSwap + "/long":  {"0.49", "61000", "59.78"},
		ethSwap + "/short": {"1.33", "3000", "39.9"},
	}
	for _, p := range st.Fund.Positions {
		w, ok := want[p.InstID+"/"+string(p.Side)]
		if !ok {
			t.Fatalf("unexpected position %+v", p)
		}
		requireEqual(t, p.InstID+" size (R5)", w[0], p.Size)
		requireEqual(t, p.InstID+" price (R5: at market)", w[1], p.AvgPrice)
		requireEqual(t, p.InstID+" margin (R5, R6)", w[2], p.Margin)
	}
	requireEqual(t, "ann fees", "0.34895", st.Fund.Figures.Fees)
	o, err := e.Store.Order(ctx, resAnn.RelationshipID+":existing-"+btcSwap+"-long")
	must(t, err)
	if o.LimitPrice != nil || o.Status != "filled" {
		t.Errorf("existing copy: status %s, limit %v; want filled with no spread limit", o.Status, o.LimitPrice)
	}

	// Ben (copy-existing off) holds nothing until the trader's next open,
	// which both copy: ratio 100 / 12,500 = 0.8%, 8 USDT at 5x → 40 / 610
	// = 0.0656 → 0.06 contracts.
	if st := e.WaitState(ctx, ben, trader, "followed", func(s workflows.State) bool { return s.CopiedExisting }); len(st.Fund.Positions) != 0 {
		t.Fatalf("ben copied existing positions with copy-existing off: %+v", st.Fund.Positions)
	}
	seq := pub("b4", evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "100", "12500", "61000", "0.81"))
	for _, f := range []string{ann, ben} {
		e.WaitApplied(ctx, f, trader, seq)
	}
	o, err = e.Store.Order(ctx, resBen.RelationshipID+":"+e.ID("b4"))
	must(t, err)
	requireEqual(t, "ben's first copy (R5 off)", "0.06", o.Size)
	orders, err := e.Store.Orders(ctx, resBen.RelationshipID)
	must(t, err)
	if len(orders) != 1 {
		t.Errorf("ben: %d orders, want only the new open", len(orders))
	}
	audit, err := e.Store.Audit(ctx)
	must(t, err)
	if !audit.OK() {
		t.Errorf("audit: %v", audit.Differences)
	}
}

// R4 (and R3): copy settings are fixed for a relationship's life. A second
// follow of the same trader with other settings is refused and changes
// nothing; after unfollow, following again with new settings creates a new
// relationship, and the old one stays ended with its own history.
func TestFollowAgainWithNewSettings_R4(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, fay := e.ID("lead"), e.ID("fay")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	_, err := e.Store.Deposit(ctx, fay, d("2000"), "deposit/"+fay)
	must(t, err)

	first, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: fay, TraderID: trader, Investment: d("500")})
	must(t, err)
	_, err = e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: fay, TraderID: trader, Investment: d("800"),
		CopyExisting: true, StopLoss: d("50"), StopMode: copytrade.ManualClose})
	var fe *copytrade.FieldError
	if !errors.As(err, &fe) || fe.Field != "trader_id" || !strings.Contains(fe.Reason, "unfollow first") {
		t.Fatalf("second follow with new settings: want a trader_id refusal saying to unfollow first (R3, R4), got %v", err)
	}
	requireEqual(t, "nothing moved by the refused follow", "1500", mustBalance(t, e, fay))
	if st := e.WaitState(ctx, fay, trader, "active", func(s workflows.State) bool { return s.Status == workflows.StatusActive }); !st.Settings.Investment.Equal(d("500")) || st.Settings.CopyExisting {
		t.Errorf("the first relationship's settings changed: %+v", st.Settings)
	}

	un, err := e.API.Unfollow(ctx, fay, trader)
	must(t, err)
	requireEqual(t, "released", "500", un.Released)
	e.WaitClosed(ctx, fay, trader)

	second, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: fay, TraderID: trader, Investment: d("800"),
		CopyExisting: true, StopLoss: d("50"), StopMode: copytrade.ManualClose})
	must(t, err)
	if second.RelationshipID == first.RelationshipID {
		t.Fatalf("following again reused relationship %s (R4: a new relationship)", first.RelationshipID)
	}
	st := e.WaitState(ctx, fay, trader, "active again", func(s workflows.State) bool { return s.Status == workflows.StatusActive })
	if st.RelationshipID != second.RelationshipID || !st.Settings.Investment.Equal(d("800")) || !st.Settings.CopyExisting ||
		!st.Settings.StopLoss.Equal(d("50")) || st.Settings.StopMode != copytrade.ManualClose {
		t.Errorf("new relationship's settings: %+v (id %s)", st.Settings, st.RelationshipID)
	}
	requireEqual(t, "available after following again", "1200", mustBalance(t, e, fay))
	rels, err := e.Store.Relationships(ctx, store.RelationshipFilter{FollowerID: fay, TraderID: trader})
	must(t, err)
	if len(rels) != 2 || rels[0].Status != store.StatusEnded || rels[1].Status != store.StatusActive ||
		rels[1].StopMode != copytrade.ManualClose || !rels[1].CopyExisting {
		t.Errorf("relationships: %+v", rels)
	}
	_, err = e.API.Unfollow(ctx, fay, trader)
	must(t, err)
}

// R20, R21 with the other two stop settings (the session shows
// copy_close): one price move, no trade, stops every breaching relationship
// within seconds, found by the risk sweep's one query; a relationship
// whose stop loss is not reached goes on. market_close closes at the mark;
// manual_close hands the position, with its margin, to the follower's own
// account (R1) and releases the rest.
func TestStopLossByPriceMove_R1_R20_R21(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader := e.ID("lead")
	mkt, man, calm := e.ID("mkt"), e.ID("man"), e.ID("calm")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("60000")))
	rel := map[string]string{}
	for f, set := range map[string]copytrade.FollowRequest{
		mkt:  {StopLoss: d("20"), StopMode: copytrade.MarketClose},
		man:  {StopLoss: d("20"), StopMode: copytrade.ManualClose},
		calm: {StopLoss: d("1000")},
	} {
		_, err := e.Store.Deposit(ctx, f, d("1000"), "deposit/"+f)
		must(t, err)
		set.FollowerID, set.TraderID, set.Investment = f, trader, d("1000")
		res, err := e.API.Follow(ctx, set)
		must(t, err)
		rel[f] = res.RelationshipID
	}
	// Ratio 10% at 10x: 100 x 10 / 600 = 1.666 → 1.66 contracts, notional
	// 996, margin 99.6, fee 0.498.
	ev := evOpen(btcSwap, copytrade.Long, copytrade.Cross, "10", "1000", "10000", "60000", "16.66")
	ev.EventID, ev.TraderID = e.ID("o1"), trader
	rep, err := e.Publisher.Publish(ctx, ev)
	must(t, err)
	for f := range rel {
		e.WaitApplied(ctx, f, trader, rep.Event.Seq)
	}

	// At 59,000: net = -0.498 + (59,000 - 60,000) x 1.66 x 0.01 = -17.098,
	// above -20: nobody stops. Two sweeps (2 s) later everyone is active.
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("59000")))
	time.Sleep(2500 * time.Millisecond)
	for f := range rel {
		if r, _ := e.Store.Relationship(ctx, rel[f]); r.Status != store.StatusActive {
			t.Fatalf("%s stopped at net -17.098 with a stop loss of 20", f)
		}
	}

	// At 58,800: net = -0.498 - 19.92 = -20.418 <= -20.
	moved := time.Now()
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("58800")))
	for _, f := range []string{mkt, man} {
		res := e.WaitClosed(ctx, f, trader)
		if took := time.Since(moved); took > 10*time.Second {
			t.Errorf("%s: stopped %s after the price move (R21: within seconds)", f, took)
		}
		if res.Status != workflows.StatusEnded || res.StopReason != workflows.StopLoss {
			t.Errorf("%s: %+v, want ended by stop_loss", f, res)
		}
	}
	t.Logf("both stops reached within %s of the price move", time.Since(moved))

	// market_close: 1.66 closed at 58,800: gross -19.92, fee 976.08 x
	// 0.0005 = 0.48804; released 1000 - 0.498 - 19.92 - 0.48804.
	requireEqual(t, "market_close released", "979.09396", mustBalance(t, e, mkt))
	// manual_close: the 99.6 margin goes with the position to the
	// follower's account; the rest, 1000 - 0.498 - 99.6, is released.
	requireEqual(t, "manual_close released", "899.902", mustBalance(t, e, man))
	requireEqual(t, "manual_close margin handed over", "99.6", balance(t, e, ledger.Manual(man)))
	history, err := e.Store.PositionHistory(ctx, rel[man])
	must(t, err)
	if len(history) != 1 || history[0].Outcome != "handed_over" || history[0].AvgClosePrice != nil {
		t.Errorf("manual_close history: %+v", history)
	}
	var size decimal.Decimal
	must(t, e.Pool.QueryRow(ctx, `select size from manual_positions where from_relationship_id = $1`, rel[man]).Scan(&size))
	requireEqual(t, "handed over size (R1)", "1.66", size)
	for _, f := range []string{mkt, man} {
		kinds := map[string]int{}
		inbox, err := e.Store.Inbox(ctx, f)
		must(t, err)
		for _, n := range inbox {
			kinds[n.Kind]++
		}
		if kinds[store.NotifyStopLoss] != 1 || kinds[store.NotifyReleased] != 1 {
			t.Errorf("%s inbox: %v", f, kinds)
		}
	}

	// calm (stop loss 1,000) is untouched.
	if r, _ := e.Store.Relationship(ctx, rel[calm]); r.Status != store.StatusActive {
		t.Errorf("calm: status %s, want active", r.Status)
	}
	_, err = e.API.Unfollow(ctx, calm, trader)
	must(t, err)
	requireEqual(t, "calm released like market_close", "979.09396", mustBalance(t, e, calm))
	audit, err := e.Store.Audit(ctx)
	must(t, err)
	if !audit.OK() {
		t.Errorf("audit: %v", audit.Differences)
	}
}

// R2, R3, R25 through the API: every refused follow names its field and
// moves nothing; a malformed trader event is refused whole and recorded
// nowhere.
func TestFollowRefusals_R2_R3_R25(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{Configure: func(c *system.Config) {
		c.Workflow.Rules.MaxFollowersPerTrader = 1
		c.Workflow.Rules.MaxTradersPerFollower = 1
	}})
	t1, t2, gil, hal := e.ID("t1"), e.ID("t2"), e.ID("gil"), e.ID("hal")
	must(t, e.Store.RegisterTrader(ctx, t1, d("10000")))
	must(t, e.Store.RegisterTrader(ctx, t2, d("10000")))
	for _, f := range []string{gil, hal} {
		_, err := e.Store.Deposit(ctx, f, d("150"), "deposit/"+f)
		must(t, err)
	}
	req := func(f, tr, amount string) copytrade.FollowRequest {
		return copytrade.FollowRequest{FollowerID: f, TraderID: tr, Investment: d(amount)}
	}
	refused := func(what string, r copytrade.FollowRequest, field, reason string) {
		t.Helper()
		before := map[string]decimal.Decimal{gil: mustBalance(t, e, gil), hal: mustBalance(t, e, hal)}
		_, err := e.API.Follow(ctx, r)
		var fe *copytrade.FieldError
		if !errors.As(err, &fe) || fe.Field != field || !strings.Contains(fe.Reason, reason) {
			t.Errorf("%s: want %s refused with %q, got %v", what, field, reason, err)
		}
		for f, b := range before {
			requireEqual(t, what+": nothing moved from "+f, b.String(), mustBalance(t, e, f))
		}
	}
	refused("R3 yourself", req(gil, gil, "100"), "trader_id", "cannot follow themselves")
	refused("R3 below minimum", req(gil, t1, "99.99"), "investment", "at least 100")
	refused("R3 not positive", req(gil, t1, "-100"), "investment", "positive")
	refused("R3 unknown trader", req(gil, e.ID("nobody"), "100"), "trader_id", "unknown trader")
	refused("R2 balance short", req(gil, t1, "200"), "investment", "available balance 150")
	rels, err := e.Store.Relationships(ctx, store.RelationshipFilter{})
	must(t, err)
	if len(rels) != 0 {
		t.Fatalf("refused follows left relationships: %+v", rels)
	}

	_, err = e.API.Follow(ctx, req(gil, t1, "100"))
	must(t, err)
	// The follow limits are set to 1 for this test (defaults 1,000 and 20).
	refused("R3 second active relationship", req(gil, t1, "100"), "trader_id", "already follows")
	refused("R3 trader at its follower limit", req(hal, t1, "100"), "trader_id", "already has 1 followers")
	refused("R3 follower at its trader limit", req(gil, t2, "100"), "follower_id", "already follows 1 traders")
	requireEqual(t, "gil: only the accepted follow moved money", "50", mustBalance(t, e, gil))
	var fe *copytrade.FieldError

	// R25: a malformed event is refused with its field, and nothing is
	// recorded (the trader's sequence does not move).
	before, err := e.Store.TraderBook(ctx, t1)
	must(t, err)
	bad := evClose(btcSwap, copytrade.Long, "0", "1")
	bad.EventID, bad.TraderID = e.ID("bad"), t1
	_, err = e.Publisher.Publish(ctx, bad)
	if !errors.As(err, &fe) || fe.Field != "price" {
		t.Errorf("R25 close without a price: %v", err)
	}
	after, err := e.Store.TraderBook(ctx, t1)
	must(t, err)
	if after.LastSeq != before.LastSeq {
		t.Errorf("R25: the refused event was recorded (seq %d → %d)", before.LastSeq, after.LastSeq)
	}
	audit, err := e.Store.Audit(ctx)
	must(t, err)
	if !audit.OK() {
		t.Errorf("audit: %v", audit.Differences)
	}
}

// R15: a leverage sync waiting for funds is superseded by the trader's
// later leverage change on the same position, and goes with the position
// when it is closed. When the follower adds funds, each position must end
// at the trader's current leverage, not at a stale one that once failed.
func TestNewerLeverageSupersedesPendingSync_R15(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, ivy := e.ID("lead"), e.ID("ivy")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, ethSwap, d("3000")))
	_, err := e.Store.Deposit(ctx, ivy, d("1200"), "deposit/"+ivy)
	must(t, err)
	_, err = e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: ivy, TraderID: trader, Investment: d("200")})
	must(t, err)
	pub := func(id string, ev copytrade.TraderEvent) workflows.State {
		t.Helper()
		ev.EventID, ev.TraderID = e.ID(id), trader
		rep, err := e.Publisher.Publish(ctx, ev)
		must(t, err)
		return e.WaitApplied(ctx, ivy, trader, rep.Event.Seq)
	}
	// 80% of the equity at 10x isolated: 160 USDT → 5.33 contracts,
	// notional 1,599, margin 159.9, fee 0.7995; 39.3005 left available.
	pub("l1", evOpen(ethSwap, copytrade.Short, copytrade.Isolated, "10", "8000", "10000", "3000", "26.66"))
	// 2x needs 799.5 margin, 639.6 more than available: pending.
	if st := pub("l2", evLeverage(ethSwap, copytrade.Short, "2")); len(st.PendingSyncs) != 1 {
		t.Fatalf("want the 2x sync pending, got %+v", st.PendingSyncs)
	}
	// The trader goes to 20x: ivy follows (1,599 / 20 = 79.95 margin).
	st := pub("l3", evLeverage(ethSwap, copytrade.Short, "20"))
	requireEqual(t, "leverage after the trader's 20x", "20", st.Fund.Positions[0].Leverage)

	// The same with a closed position: a BTC long at 10x (0.33 contracts,
	// margin 19.8, fee 0.099), a 1x sync that needs 178.2 more than the
	// 99.3515 available, then the trader closes it and opens a new one at
	// 10x. The old sync was about the closed position.
	must(t, e.Store.SetMarkPrice(ctx, btcSwap, d("60000")))
	pub("l4", evOpen(btcSwap, copytrade.Long, copytrade.Isolated, "10", "1000", "10000", "60000", "16.66"))
	if st := pub("l5", evLeverage(btcSwap, copytrade.Long, "1")); len(st.PendingSyncs) != 1 {
		t.Fatalf("want the 1x sync pending, got %+v", st.PendingSyncs)
	}
	pub("l6", evClose(btcSwap, copytrade.Long, "60000", "16.66"))
	pub("l7", evOpen(btcSwap, copytrade.Long, copytrade.Isolated, "10", "1000", "10000", "60000", "16.66"))

	// Ivy adds funds: neither stale sync may be applied.
	fv, err := e.API.ChangeInvestment(ctx, ivy, trader, workflows.InvestmentRequest{Direction: workflows.Raise, Amount: d("1000")})
	must(t, err)
	if len(fv.Positions) != 2 {
		t.Fatalf("positions: %+v", fv.Positions)
	}
	btc, eth := fv.Positions[0], fv.Positions[1]
	requireEqual(t, "ETH leverage after the raise (R15: the trader's current 20x)", "20", eth.Leverage)
	requireEqual(t, "ETH margin after the raise", "79.95", eth.Margin)
	requireEqual(t, "BTC leverage after the raise (the new position's 10x)", "10", btc.Leverage)
	requireEqual(t, "BTC margin after the raise", "19.8", btc.Margin)
	if st := e.WaitState(ctx, ivy, trader, "raised", func(s workflows.State) bool { return s.InvestmentChanges == 1 }); len(st.PendingSyncs) != 0 {
		t.Errorf("pending syncs after the raise: %+v", st.PendingSyncs)
	}
}

// R18: an investment change the caller retries with the same request id
// (after a timeout, say, not knowing whether the first went through) moves
// the money once, and the retry answers with the first outcome; another
// request id is another change. A request id too long is refused, naming
// the field, and changes nothing.
func TestInvestmentChangeRetriedWithRequestID_R18(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, f := e.ID("trader"), e.ID("retry")
	setup(t, e, trader, map[string]string{f: "2000"})
	_, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("1000")})
	must(t, err)

	raise := workflows.InvestmentRequest{Direction: workflows.Raise, Amount: d("1000"), RequestID: "raise-" + f}
	first, err := e.API.ChangeInvestment(ctx, f, trader, raise)
	must(t, err)
	again, err := e.API.ChangeInvestment(ctx, f, trader, raise)
	must(t, err)
	requireEqual(t, "investment after the raise", "2000", first.Figures.Investment)
	requireEqual(t, "investment the retry answers with", "2000", again.Figures.Investment)
	available, err := e.Store.AvailableBalance(ctx, f)
	must(t, err)
	requireEqual(t, "available balance after the raise and its retry", "0", available)
	if st := e.WaitState(ctx, f, trader, "raised", func(s workflows.State) bool { return s.InvestmentChanges >= 1 }); st.InvestmentChanges != 1 {
		t.Errorf("investment changes: %d, want 1", st.InvestmentChanges)
	}

	lower := workflows.InvestmentRequest{Direction: workflows.Lower, Amount: d("500"), RequestID: "lower-" + f}
	fv, err := e.API.ChangeInvestment(ctx, f, trader, lower)
	must(t, err)
	requireEqual(t, "investment after a change with another request id", "1500", fv.Figures.Investment)

	long := workflows.InvestmentRequest{Direction: workflows.Lower, Amount: d("100"), RequestID: strings.Repeat("x", 201)}
	_, err = e.API.ChangeInvestment(ctx, f, trader, long)
	var fe *copytrade.FieldError
	if !errors.As(err, &fe) || fe.Field != "request_id" {
		t.Fatalf("request id of 201 characters: got %v, want a refusal naming request_id", err)
	}
	available, err = e.Store.AvailableBalance(ctx, f)
	must(t, err)
	requireEqual(t, "available balance after the refused change", "500", available)
}
