package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/store"
	"smartcopy/venue"
)

// Following moves the investment from the available balance into the copy
// fund and answers with the trader's book; following again with the same
// relationship id moves nothing (R2).
func TestFollowMovesInvestment_R2(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.deposit("alice", "1500")
	f.record(openEvent("e1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "10", "50000", "1000", "5", "10000"))

	res := f.follow("r1", "alice", "t1", "1000")
	eq(t, "follower available", res.FollowerAvailable, d("500"))
	eq(t, "available account", f.balance(ledger.Available("alice")), d("500"))
	eq(t, "fund account", f.balance(ledger.Fund("r1")), d("1000"))
	eq(t, "equity", res.Figures.Equity, d("1000"))
	eq(t, "fund available", res.Figures.Available, d("1000"))
	eq(t, "investment", res.Figures.Investment, d("1000"))
	if res.TraderSeq != 1 {
		t.Errorf("trader seq at follow = %d, want 1", res.TraderSeq)
	}
	eq(t, "book equity", res.Book.Equity, d("10000"))
	if len(res.Book.Positions) != 1 || !res.Book.Positions[0].Margin.Equal(d("1000")) {
		t.Errorf("book positions = %+v", res.Book.Positions)
	}

	r, err := f.st.Relationship(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.StatusActive || r.WorkflowID != "copy/alice/t1" || r.FollowerID != "alice" || r.TraderID != "t1" ||
		r.StopMode != copytrade.MarketClose || r.TraderSeqAtFollow != 1 || r.Released != nil || r.EndedAt != nil {
		t.Errorf("relationship = %+v", r)
	}
	eq(t, "relationship investment", r.Investment, d("1000"))
	changes, err := f.st.InvestmentChanges(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Kind != "follow" || !changes[0].Amount.Equal(d("1000")) || !changes[0].InvestmentAfter.Equal(d("1000")) {
		t.Errorf("investment changes = %+v", changes)
	}

	// A retry, even after the trader moved on, answers as the first did.
	f.record(openEvent("e2", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "1", "50000", "100", "5", "10000"))
	txBefore := f.count(`select count(*) from ledger_transactions`)
	again := f.follow("r1", "alice", "t1", "1000")
	if again.TraderSeq != 1 {
		t.Errorf("replayed trader seq = %d, want 1", again.TraderSeq)
	}
	eq(t, "replayed follower available", again.FollowerAvailable, d("500"))
	eq(t, "replayed equity", again.Figures.Equity, d("1000"))
	if n := f.count(`select count(*) from ledger_transactions`); n != txBefore {
		t.Errorf("replay posted %d ledger transactions", n-txBefore)
	}
	eq(t, "available after replay", f.balance(ledger.Available("alice")), d("500"))
}

// Every refusal of R3 (and R2's short balance) names its field and leaves
// balances, relationships and the ledger as they were.
func TestFollowRefusals_R2_R3(t *testing.T) {
	t.Parallel()
	rules := copytrade.DefaultRules()
	rules.MaxFollowersPerTrader = 1
	rules.MaxTradersPerFollower = 1
	f := newFixture(t, rules)
	f.deposit("fa", "5000")
	f.deposit("fb", "5000")
	f.deposit("fc", "50")
	f.trader("ta", "10000")
	f.trader("tb", "10000")
	f.follow("ra", "fa", "ta", "1000")

	type state struct {
		fa, fb, fc         string
		txs, rels, changes int
	}
	snapshot := func() state {
		return state{
			fa: f.balance(ledger.Available("fa")).String(), fb: f.balance(ledger.Available("fb")).String(),
			fc:  f.balance(ledger.Available("fc")).String(),
			txs: f.count(`select count(*) from ledger_transactions`), rels: f.count(`select count(*) from relationships`),
			changes: f.count(`select count(*) from investment_changes`),
		}
	}
	before := snapshot()

	for _, tc := range []struct {
		name   string
		params store.FollowParams
		field  string
		reason string
	}{
		{"following yourself", followParams("r1", "fb", "fb", "100"), "trader_id", "a follower cannot follow themselves"},
		{"unknown trader", followParams("r1", "fb", "tx", "100"), "trader_id", `unknown trader "tx"`},
		{"second live relationship with the trader", followParams("r1", "fa", "ta", "100"), "trader_id", "already following trader ta"},
		{"trader at its follower limit", followParams("r1", "fb", "ta", "100"), "trader_id", "trader ta already has 1 followers"},
		{"follower at its trader limit", followParams("r1", "fa", "tb", "100"), "follower_id", "follower fa already follows 1 traders"},
		{"available balance short", followParams("r1", "fc", "tb", "100"), "investment", "available balance 50 USDT is less than 100"},
		{"unknown follower", followParams("r1", "fz", "tb", "100"), "investment", "available balance 0 USDT is less than 100"},
		{"below the minimum", followParams("r1", "fb", "tb", "99.99"), "investment", "must be at least 100 USDT"},
		{"zero investment", followParams("r1", "fb", "tb", "0"), "investment", "must be a positive amount"},
		{"negative investment", followParams("r1", "fb", "tb", "-100"), "investment", "must be a positive amount"},
		{"relationship id of another pair", followParams("ra", "fb", "tb", "100"), "relationship_id", "already names follower fa"},
		{"no relationship id", followParams("", "fb", "tb", "100"), "relationship_id", "is required"},
		{"no workflow id", func() store.FollowParams { p := followParams("r1", "fb", "tb", "100"); p.WorkflowID = ""; return p }(), "workflow_id", "is required"},
		{"negative stop loss", func() store.FollowParams {
			p := followParams("r1", "fb", "tb", "100")
			p.Request.StopLoss = d("-1")
			return p
		}(), "stop_loss", "must be a positive amount"},
		{"unknown stop mode", func() store.FollowParams {
			p := followParams("r1", "fb", "tb", "100")
			p.Request.StopMode = "panic"
			return p
		}(), "stop_mode", "must be market_close"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.st.Follow(f.ctx, tc.params)
			wantReason(t, wantField(t, err, tc.field), tc.reason)
			if after := snapshot(); after != before {
				t.Errorf("refused follow changed state: %+v, was %+v", after, before)
			}
		})
	}
	if n := f.count(`select count(*) from ledger_accounts where kind = 'fund'`); n != 1 {
		t.Errorf("fund accounts = %d, want only ra's", n)
	}
}

// Follows racing each other cannot beat the limits or spend one balance
// twice: the trader row and the follower's account are locked (R2, R3).
func TestFollowConcurrent_R2_R3(t *testing.T) {
	t.Parallel()
	race := func(t *testing.T, st *store.Store, params []store.FollowParams) (ok int, refused []*copytrade.FieldError) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(params))
		for i, p := range params {
			wg.Go(func() { _, errs[i] = st.Follow(t.Context(), p) })
		}
		wg.Wait()
		for _, err := range errs {
			var fe *copytrade.FieldError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &fe):
				refused = append(refused, fe)
			default:
				t.Fatalf("follow failed: %v", err)
			}
		}
		return ok, refused
	}

	t.Run("follower limit", func(t *testing.T) {
		t.Parallel()
		rules := copytrade.DefaultRules()
		rules.MaxTradersPerFollower = 1
		f := newFixture(t, rules)
		f.deposit("alice", "5000")
		var params []store.FollowParams
		for i := range 4 {
			f.trader(fmt.Sprintf("t%d", i), "10000")
			params = append(params, followParams(fmt.Sprintf("r%d", i), "alice", fmt.Sprintf("t%d", i), "1000"))
		}
		ok, refused := race(t, f.st, params)
		if ok != 1 || len(refused) != 3 {
			t.Fatalf("%d follows succeeded, %d refused; want 1 and 3", ok, len(refused))
		}
		for _, fe := range refused {
			if fe.Field != "follower_id" {
				t.Errorf("refusal on %s: %s", fe.Field, fe.Reason)
			}
		}
		eq(t, "available", f.balance(ledger.Available("alice")), d("4000"))
	})

	t.Run("trader limit", func(t *testing.T) {
		t.Parallel()
		rules := copytrade.DefaultRules()
		rules.MaxFollowersPerTrader = 1
		f := newFixture(t, rules)
		f.trader("t1", "10000")
		var params []store.FollowParams
		for i := range 4 {
			f.deposit(fmt.Sprintf("f%d", i), "1000")
			params = append(params, followParams(fmt.Sprintf("r%d", i), fmt.Sprintf("f%d", i), "t1", "1000"))
		}
		ok, refused := race(t, f.st, params)
		if ok != 1 || len(refused) != 3 {
			t.Fatalf("%d follows succeeded, %d refused; want 1 and 3", ok, len(refused))
		}
		for _, fe := range refused {
			if fe.Field != "trader_id" {
				t.Errorf("refusal on %s: %s", fe.Field, fe.Reason)
			}
		}
		if n := f.count(`select count(*) from relationships`); n != 1 {
			t.Errorf("relationships = %d, want 1", n)
		}
	})

	t.Run("one balance", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, copytrade.DefaultRules())
		f.deposit("alice", "1500")
		f.trader("t1", "10000")
		f.trader("t2", "10000")
		ok, refused := race(t, f.st, []store.FollowParams{
			followParams("r1", "alice", "t1", "1000"),
			followParams("r2", "alice", "t2", "1000"),
		})
		if ok != 1 || len(refused) != 1 || refused[0].Field != "investment" {
			t.Fatalf("%d follows succeeded, refused %+v; want 1 and one on investment", ok, refused)
		}
		eq(t, "available", f.balance(ledger.Available("alice")), d("500"))
	})

	t.Run("same relationship twice", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, copytrade.DefaultRules())
		f.deposit("alice", "5000")
		f.trader("t1", "10000")
		p := followParams("r1", "alice", "t1", "1000")
		ok, refused := race(t, f.st, []store.FollowParams{p, p, p})
		if ok != 3 || len(refused) != 0 {
			t.Fatalf("%d retries succeeded, refused %+v; want all 3 to answer", ok, refused)
		}
		eq(t, "available", f.balance(ledger.Available("alice")), d("4000"))
	})
}

// Raising takes from the available balance; lowering gives back at most the
// fund's available amount and not below the minimum; each answers with the
// new figures, and a refusal moves nothing (R18).
func TestChangeInvestment_R18(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.deposit("alice", "1500")
	f.trader("t1", "10000")
	f.follow("r1", "alice", "t1", "1000")

	fig, err := f.st.ChangeInvestment(f.ctx, "r1", "k1", d("200"))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "investment after raise", fig.Investment, d("1200"))
	eq(t, "equity after raise", fig.Equity, d("1200"))
	eq(t, "available after raise", f.balance(ledger.Available("alice")), d("300"))
	eq(t, "fund after raise", f.balance(ledger.Fund("r1")), d("1200"))

	fig, err = f.st.ChangeInvestment(f.ctx, "r1", "k1", d("200"))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "investment after replay", fig.Investment, d("1200"))
	eq(t, "available after replay", f.balance(ledger.Available("alice")), d("300"))

	// 900 of the fund's 1200 is margin of an open position.
	f.position("r1", "BTC-USDT-SWAP", copytrade.Long, "1", "50000", "900")

	txs := f.count(`select count(*) from ledger_transactions`)
	for _, tc := range []struct {
		name, rel, key, delta, field, reason string
	}{
		{"raise beyond the available balance", "r1", "k2", "400", "amount", "available balance 300 USDT is less than 400"},
		{"lower beyond the fund's available", "r1", "k2", "-301", "amount", "can lower by at most 300 USDT"},
		{"lower far beyond the fund's available", "r1", "k2", "-1101", "amount", "can lower by at most 300"},
		{"zero", "r1", "k2", "0", "amount", "must not be zero"},
		{"too many decimals", "r1", "k2", "0.000000001", "amount", "decimal places"},
		{"no key", "r1", "", "10", "key", "is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.st.ChangeInvestment(f.ctx, tc.rel, tc.key, d(tc.delta))
			wantReason(t, wantField(t, err, tc.field), tc.reason)
		})
	}
	if _, err := f.st.ChangeInvestment(f.ctx, "nope", "k2", d("10")); !errors.Is(err, store.ErrUnknownRelationship) {
		t.Errorf("unknown relationship: %v", err)
	}
	if n := f.count(`select count(*) from ledger_transactions`); n != txs {
		t.Errorf("refusals posted %d transactions", n-txs)
	}
	eq(t, "available after refusals", f.balance(ledger.Available("alice")), d("300"))

	fig, err = f.st.ChangeInvestment(f.ctx, "r1", "k3", d("-300"))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "investment after lower", fig.Investment, d("900"))
	eq(t, "fund available after lower", fig.Available, d("0"))
	eq(t, "used after lower", fig.Used, d("900"))
	eq(t, "available balance after lower", f.balance(ledger.Available("alice")), d("600"))
	eq(t, "fund after lower", f.balance(ledger.Fund("r1")), d("900"))

	// The minimum: with the position gone, 900 can fall to 100 but not 99.
	f.exec(`delete from positions`)
	_, err = f.st.ChangeInvestment(f.ctx, "r1", "k4", d("-801"))
	wantReason(t, wantField(t, err, "amount"), "would leave an investment of 99 USDT, below the minimum 100")
	// A stopping relationship has no minimum to keep.
	if err := f.st.SetStatus(f.ctx, "r1", store.StatusStopping, "unfollow"); err != nil {
		t.Fatal(err)
	}
	if fig, err = f.st.ChangeInvestment(f.ctx, "r1", "k4", d("-801")); err != nil {
		t.Fatal(err)
	}
	eq(t, "investment of a stopping relationship", fig.Investment, d("99"))

	// A key belongs to one relationship.
	f.deposit("bob", "1000")
	f.follow("r2", "bob", "t1", "500")
	_, err = f.st.ChangeInvestment(f.ctx, "r2", "k1", d("10"))
	wantField(t, err, "key")

	if err := f.st.SetStatus(f.ctx, "r1", store.StatusEnded, ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.st.ChangeInvestment(f.ctx, "r1", "k5", d("10"))
	wantReason(t, wantField(t, err, "relationship_id"), "has ended")

	changes, err := f.st.InvestmentChanges(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, fmt.Sprintf("%s %s -> %s", c.Kind, c.Amount, c.InvestmentAfter))
	}
	want := []string{"follow 1000 -> 1000", "raise 200 -> 1200", "lower 300 -> 900", "lower 801 -> 99"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("investment changes = %q, want %q", got, want)
	}
}

// The fund's equity as the domain computes it (R17) is the fund's ledger
// balance, through a follow, an investment change, an open and a close.
func TestFiguresMatchLedger_R14_R17(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.deposit("alice", "2000")
	f.trader("t1", "10000")
	f.follow("r1", "alice", "t1", "1000")
	if _, err := f.st.ChangeInvestment(f.ctx, "r1", "k1", d("500")); err != nil {
		t.Fatal(err)
	}
	// Open 2 BTC contracts at 50,000 (notional 1,000, 5x: margin 200, fee 0.5).
	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "o1", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Open, size: "2", price: "50000", fee: "0.5", margin: "200"})
	// Close 1 at 51,000: gross (51000-50000) x 1 x 0.01 = 10, fee 0.255.
	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "o2", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Close, size: "1", price: "51000", fee: "0.255", margin: "100", gross: "10"})
	f.position("r1", "BTC-USDT-SWAP", copytrade.Long, "1", "50000", "100")
	// A rejected order counts nothing.
	if _, err := f.st.RecordRejectedOrder(f.ctx, venue.OrderRequest{ClientOrderID: "o3", RelationshipID: "r1", FollowerID: "alice",
		TraderID: "t1", TraderEventID: "e3", InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Action: venue.Open},
		&copytrade.Rejection{Reason: copytrade.ReasonSpreadProtection, Detail: "too far"}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetMarkPrice(f.ctx, "BTC-USDT-SWAP", d("49000")); err != nil {
		t.Fatal(err)
	}

	fig, positions, err := f.st.Figures(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "investment", fig.Investment, d("1500"))
	eq(t, "realized", fig.RealizedPnL, d("10"))
	eq(t, "fees", fig.Fees, d("0.755"))
	eq(t, "equity", fig.Equity, d("1509.245"))
	eq(t, "equity is the fund's ledger balance", fig.Equity, f.balance(ledger.Fund("r1")))
	eq(t, "used", fig.Used, d("100"))
	eq(t, "available", fig.Available, d("1409.245"))
	eq(t, "unrealized at 49,000", fig.UnrealizedPnL, d("-10"))
	eq(t, "net", fig.NetPnL, d("-0.755"))
	if len(positions) != 1 || positions[0].InstID != "BTC-USDT-SWAP" || positions[0].Side != copytrade.Long {
		t.Errorf("positions = %+v", positions)
	}
	if _, _, err := f.st.Figures(f.ctx, "nope"); !errors.Is(err, store.ErrUnknownRelationship) {
		t.Errorf("figures of unknown relationship: %v", err)
	}
	report, err := f.st.Audit(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Errorf("audit: %q", report.Differences)
	}
}

// Release waits for the positions to be gone, then moves the whole fund
// back and ends the relationship; a second release moves nothing and
// answers the same amount (R19, R22).
func TestReleaseIdempotent_R19_R22(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.deposit("alice", "1500")
	f.trader("t1", "10000")
	f.follow("r1", "alice", "t1", "1000")
	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "o1", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Open, size: "2", price: "50000", fee: "0.5", margin: "200"})
	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "o2", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Close, size: "1", price: "51000", fee: "0.255", margin: "100", gross: "10"})
	f.position("r1", "BTC-USDT-SWAP", copytrade.Long, "1", "50000", "100")

	txs := f.count(`select count(*) from ledger_transactions`)
	if _, _, err := f.st.Release(f.ctx, "r1"); !errors.Is(err, store.ErrPositionsOpen) {
		t.Fatalf("release with an open position: %v, want ErrPositionsOpen", err)
	}
	if n := f.count(`select count(*) from ledger_transactions`); n != txs {
		t.Errorf("refused release posted")
	}

	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "o3", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Close, size: "1", price: "52000", fee: "0.26", margin: "100", gross: "20"})
	f.position("r1", "BTC-USDT-SWAP", copytrade.Long, "0", "50000", "0")
	if err := f.st.SetStatus(f.ctx, "r1", store.StatusStopping, "unfollow"); err != nil {
		t.Fatal(err)
	}
	// 1000 - 0.5 + 10 - 0.255 + 20 - 0.26
	const want = "1028.985"
	released, first, err := f.st.Release(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !first {
		t.Errorf("first release says it moved nothing")
	}
	eq(t, "released", released, d(want))
	eq(t, "available after release", f.balance(ledger.Available("alice")), d("500").Add(d(want)))
	eq(t, "fund after release", f.balance(ledger.Fund("r1")), d("0"))
	r, err := f.st.Relationship(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.StatusEnded || r.StopReason != "unfollow" || r.EndedAt == nil || r.Released == nil || !r.Released.Equal(d(want)) || !r.Investment.IsZero() {
		t.Errorf("relationship after release = %+v", r)
	}

	txs = f.count(`select count(*) from ledger_transactions`)
	again, first, err := f.st.Release(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if first {
		t.Errorf("second release says it moved the fund again")
	}
	eq(t, "second release", again, d(want))
	if n := f.count(`select count(*) from ledger_transactions`); n != txs {
		t.Errorf("second release posted")
	}
	eq(t, "available after second release", f.balance(ledger.Available("alice")), d("500").Add(d(want)))
	changes, err := f.st.InvestmentChanges(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	last := changes[len(changes)-1]
	if len(changes) != 2 || last.Kind != "release" || !last.Amount.Equal(d(want)) || !last.InvestmentAfter.IsZero() {
		t.Errorf("investment changes = %+v", changes)
	}

	// The ended relationship no longer blocks following the trader again.
	if _, err := f.st.LiveRelationship(f.ctx, "alice", "t1"); !errors.Is(err, store.ErrUnknownRelationship) {
		t.Errorf("live relationship after release: %v", err)
	}
	f.follow("r2", "alice", "t1", "1000")
	report, err := f.st.Audit(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK() {
		t.Errorf("audit: %q", report.Differences)
	}
}

func TestStatusStopLossAndLookups(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.deposit("alice", "5000")
	f.deposit("bob", "5000")
	f.trader("t1", "10000")
	f.trader("t2", "10000")
	f.follow("r1", "alice", "t1", "1000")
	f.follow("r2", "bob", "t1", "1000")
	f.follow("r3", "alice", "t2", "1000")

	wantField(t, f.st.SetStopLoss(f.ctx, "r1", d("-1"), ""), "stop_loss")
	wantField(t, f.st.SetStopLoss(f.ctx, "r1", d("1"), "panic"), "stop_mode")
	if err := f.st.SetStopLoss(f.ctx, "nope", d("1"), ""); !errors.Is(err, store.ErrUnknownRelationship) {
		t.Errorf("stop loss of unknown relationship: %v", err)
	}
	if err := f.st.SetStopLoss(f.ctx, "r1", d("150"), copytrade.CopyClose); err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetStopLoss(f.ctx, "r1", d("120"), ""); err != nil {
		t.Fatal(err)
	}
	r, err := f.st.Relationship(f.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !r.StopLoss.Equal(d("120")) || r.StopMode != copytrade.CopyClose {
		t.Errorf("stop loss %s %s, want 120 copy_close", r.StopLoss, r.StopMode)
	}

	wantField(t, f.st.SetStatus(f.ctx, "r1", "paused", ""), "status")
	if err := f.st.SetStatus(f.ctx, "r2", store.StatusStopping, "stop_loss"); err != nil {
		t.Fatal(err)
	}
	live, err := f.st.LiveFollowers(f.ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 2 || live[0].ID != "r1" || live[1].ID != "r2" || live[1].Status != store.StatusStopping || live[1].StopReason != "stop_loss" {
		t.Errorf("live followers of t1 = %+v", live)
	}
	if err := f.st.SetStatus(f.ctx, "r2", store.StatusEnded, ""); err != nil {
		t.Fatal(err)
	}
	wantField(t, f.st.SetStatus(f.ctx, "r2", store.StatusActive, ""), "status")
	if err := f.st.SetStatus(f.ctx, "r2", store.StatusEnded, "again"); err != nil {
		t.Errorf("ending twice: %v", err)
	}
	r, err = f.st.Relationship(f.ctx, "r2")
	if err != nil {
		t.Fatal(err)
	}
	if r.EndedAt == nil || r.StopReason != "stop_loss" {
		t.Errorf("ended relationship = %+v", r)
	}
	if _, err := f.st.Relationship(f.ctx, "nope"); !errors.Is(err, store.ErrUnknownRelationship) {
		t.Errorf("unknown relationship: %v", err)
	}

	ids := func(rs []store.Relationship, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		filter store.RelationshipFilter
		want   string
	}{
		{store.RelationshipFilter{}, "[r1 r2 r3]"},
		{store.RelationshipFilter{TraderID: "t1"}, "[r1 r2]"},
		{store.RelationshipFilter{TraderID: "t1", LiveOnly: true}, "[r1]"},
		{store.RelationshipFilter{FollowerID: "alice"}, "[r1 r3]"},
		{store.RelationshipFilter{FollowerID: "bob", LiveOnly: true}, "[]"},
	} {
		if got := ids(f.st.Relationships(f.ctx, tc.filter)); got != tc.want {
			t.Errorf("Relationships(%+v) = %s, want %s", tc.filter, got, tc.want)
		}
	}
	lr, err := f.st.LiveRelationship(f.ctx, "alice", "t2")
	if err != nil || lr.ID != "r3" {
		t.Errorf("live relationship alice/t2 = %+v, %v", lr, err)
	}
}
