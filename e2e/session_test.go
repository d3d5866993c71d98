package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/api"
	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/ledger"
	"smartcopy/store"
	"smartcopy/workflows"
)

// TestSession is a scripted trading session end to end: one lead trader, 22
// trader events (and one duplicate delivery) across BTC-USDT-SWAP and
// ETH-USDT-SWAP, long and short, cross and isolated; three followers of
// different sizes:
//
//   - small invests 100, the minimum (R1): the trader's tiny ETH short
//     sizes below the minimum order, so small opens the minimum size with a
//     larger margin (R7);
//   - bob invests 1,000, lowers it to 500 (R18) and so runs short of funds:
//     a leverage sync fails for lack of margin (R15: recorded, notified,
//     retried and applied once bob raises the investment again), and the
//     trader's big BTC short fails with insufficient_funds (R9: recorded,
//     notified, not retried when funds arrive); when the trader closes that
//     short, bob has nothing to close (R13); bob unfollows with positions
//     open, which closes them at market and releases the fund (R19, R22),
//     and unfollows a second time, which moves nothing (R22);
//   - carol invests 2,000 with a stop loss of 150 USDT and stop setting
//     copy_close: a BTC price move, with no trade, takes her net PnL
//     (realized - fees + unrealized at mark, R20) past the stop; the risk
//     sweep finds it within seconds (R21); she then opens nothing new, keeps
//     following the trader's closes and risk changes, and her fund is
//     released when the trader's closes leave her flat (R1, R19).
//
// Along the way: merges with a size-weighted average price (R8), partial
// and full closes rounded to the nearest lot (R12) with realized PnL and
// fees (R14), an isolated margin top-up and removal (R16), an open refused by
// spread protection (R10) and one at a leverage above the maximum (R11),
// the same event published twice and applied once (R24), fund figures
// (R17), notifications (R23) and the details a follower reads (R26).
//
// Every figure is checked after every step against a reference model
// (model_test.go) that computes it with plain decimal arithmetic from
// SPEC.md, and a few are pinned below as hand-computed numbers. The session
// ends with SPEC.md §4's invariant holding to the cent.
func TestSession(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	s := newSession(t, e)
	must(t, e.Store.RegisterTrader(ctx, s.trader, d("10000")))
	s.mark(btcSwap, "60000")
	s.mark(ethSwap, "3000")

	small := s.follow("small", "100", "100", "", "")
	bob := s.follow("bob", "1200", "1000", "", "")
	carol := s.follow("carol", "2000", "2000", "150", copytrade.CopyClose)

	// 1. The seed's example (R6): equity 10,000, 1,000 margin at 5x cross
	// long: ratio 10%. Bob: 100 USDT x 5 / (60,000 x 0.01) = 0.8333 → 0.83
	// contracts (R7), notional 498, margin 99.6, fee 0.249.
	s.publish("e01", evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "1000", "10000", "60000", "8.33"))
	s.pinOrder(bob, "e01", "filled", "0.83", "99.6", "0.249")
	s.pinOrder(small, "e01", "filled", "0.08", "9.6", "0.024")
	s.pinOrder(carol, "e01", "filled", "1.66", "199.2", "0.498")

	// 2. A tiny ETH short, ratio 0.2%: small's 0.2 USDT x 10 / (3,000 x
	// 0.1) = 0.0067 contracts is below the minimum 0.01, so small opens
	// 0.01 (R7): notional 3, margin 0.3 instead of 0.2, fee 0.0015.
	s.publish("e02", evOpen(ethSwap, copytrade.Short, copytrade.Isolated, "10", "20", "10000", "3000", "0.66"))
	s.pinOrder(small, "e02", "filled", "0.01", "0.3", "0.0015")
	s.pinOrder(bob, "e02", "filled", "0.06", "1.8", "0.009")
	s.checkSizing(small, "e02", "0.002", "0.2", true)

	// 3. BTC rises; the trader adds to the long: merged at the size-weighted
	// average (R8). Bob: 0.83 @ 60,000 + 0.40 @ 62,000 = 1.23 @ 60,650.41.
	s.mark(btcSwap, "62000")
	s.publish("e03", evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "500", "10000", "62000", "4.03"))
	s.pinPosition(bob, btcSwap, copytrade.Long, "1.23", "60650.4065040650406504", "149.2")

	// 4, 5. An ETH long (cross) and more ETH short (isolated, merged).
	s.publish("e04", evOpen(ethSwap, copytrade.Long, copytrade.Cross, "3", "1500", "10000", "3000", "15"))
	s.mark(ethSwap, "2950")
	s.publish("e05", evOpen(ethSwap, copytrade.Short, copytrade.Isolated, "10", "1000", "10000", "2950", "33.89"))

	// Bob lowers his investment by 500 (R18): the update answers with the
	// new figures. Lowering small below the minimum, or bob by more than his
	// fund's available amount, is refused and moves nothing (R18, R25).
	s.refuseInvestment(small, workflows.Lower, "10", "amount")
	s.refuseInvestment(bob, workflows.Lower, "900", "amount")
	s.changeInvestment(bob, workflows.Lower, "500")

	// 6. The trader halves the leverage of the isolated ETH short (R15):
	// small and carol find the extra margin; bob, with 98.18 USDT available,
	// cannot find his 101.51 and the sync fails, notified (R23).
	s.publish("e06", evLeverage(ethSwap, copytrade.Short, "5"))
	s.pinSync(bob, "e06", "failed:insufficient_funds")
	if st := s.state(bob); len(st.PendingSyncs) != 1 {
		t.Fatalf("bob: want the failed leverage sync pending (R15), got %+v", st.PendingSyncs)
	}

	// 7. A big BTC short, ratio 30%: bob's 150 USDT of margin is more than
	// he has, so it fails with insufficient_funds (R9).
	s.publish("e07", evOpen(btcSwap, copytrade.Short, copytrade.Isolated, "10", "3000", "10000", "62000", "48.38"))
	s.pinOrder(bob, "e07", "rejected:insufficient_funds", "2.41", "0", "0")
	s.pinOrder(carol, "e07", "filled", "9.67", "599.54", "2.9977")

	// 8. The trader adds 300 to the BTC short's 3,000 margin: the followers
	// add 10% of theirs (R16); bob holds none. Published twice: applied once
	// (R24).
	s.publish("e08", evMargin(btcSwap, copytrade.Short, "300"))
	s.pinPosition(carol, btcSwap, copytrade.Short, "9.67", "62000", "659.494")
	s.republish("e08")

	// Bob raises his investment by 500 (R18): the failed leverage sync is
	// applied now (R15); the failed open is not retried (R9).
	s.changeInvestment(bob, workflows.Raise, "500")
	s.pinSync(bob, "e06", "failed:insufficient_funds", "applied")
	s.pinPosition(bob, ethSwap, copytrade.Short, "3.44", "2950.8720930232558140", "203.02")
	if o, _ := s.e.Store.Order(ctx, bob.relID+":"+e.ID("e07")); o.Status != "rejected" {
		t.Errorf("bob's e07 was retried after the raise (R9): %+v", o)
	}

	// 9. ETH falls; the trader closes 20% of the ETH short (R12): bob
	// closes 3.44 x 0.2 = 0.688 → 0.69 contracts (nearest lot).
	s.mark(ethSwap, "2900")
	s.publish("e09", evClose(ethSwap, copytrade.Short, "2900", "6.91"))
	s.pinOrder(bob, "e09", "filled", "0.69", "40.72203488", "0.10005")

	// 10. The trader's ETH long filled at 2,880, but the market is at
	// 2,900, more than 0.5% worse: not placed (R10).
	s.publish("e10", evOpen(ethSwap, copytrade.Long, copytrade.Cross, "3", "300", "10000", "2880", "3.12"))
	s.pinOrder(carol, "e10", "rejected:spread_protection", "0.62", "0", "0")

	// 11. 150x is above the instrument's 100x maximum: a named failure,
	// nothing placed, the relationship goes on (R11).
	s.publish("e11", evOpen(ethSwap, copytrade.Long, copytrade.Cross, "150", "100", "10000", "2900", "51.72"))
	s.pinOrder(small, "e11", "rejected:leverage_above_max", "0", "0", "0")

	// 12. BTC rises; the trader closes 25% of the BTC long (R12, R14).
	// Carol closes 2.46 x 0.25 = 0.615 → 0.62 (nearest lot, half up).
	s.mark(btcSwap, "63000")
	s.publish("e12", evClose(btcSwap, copytrade.Long, "63000", "3.09"))
	s.pinOrder(carol, "e12", "filled", "0.62", "75.20650407", "0.1953")

	// 13. The trader removes 330 of the BTC short's 3,300 margin (R16).
	s.publish("e13", evMargin(btcSwap, copytrade.Short, "-330"))

	// A BTC spike, no trade: carol's net PnL falls below -150 and the risk
	// sweep stops her (R20, R21); copy_close keeps her positions.
	s.mark(btcSwap, "65000")
	if carol.status != "stopping" || small.status != "active" || bob.status != "active" {
		t.Fatalf("the BTC spike should stop carol only: %s; %s; %s", carol, small, bob)
	}

	// 14. A new BTC long: carol is stopping and opens nothing (R1, R22).
	s.publish("e14", evOpen(btcSwap, copytrade.Long, copytrade.Cross, "5", "200", "10000", "65000", "1.53"))
	if _, ok := carol.order(e.ID("e14")); ok {
		t.Errorf("carol copied an open while stopping")
	}
	s.pinNote(carol, "not copied: relationship is stopping")

	// 15. The trader closes the BTC short fully (R12): bob never held it and
	// does nothing (R13); carol, stopping, still follows the close.
	s.publish("e15", evClose(btcSwap, copytrade.Short, "65000", "48.38"))
	s.pinNote(bob, "nothing to do: "+copytrade.ReasonNoPosition)
	if _, ok := bob.order(e.ID("e15")); ok {
		t.Errorf("bob closed a position he never opened (R13)")
	}

	// 16. Leverage of the cross BTC long 5x → 4x: synced on cross positions
	// too, and by carol while stopping (R15).
	s.publish("e16", evLeverage(btcSwap, copytrade.Long, "4"))
	s.pinSync(carol, "e16", "applied")

	// 17. The trader closes the ETH long fully at 2,950.
	s.mark(ethSwap, "2950")
	s.publish("e17", evClose(ethSwap, copytrade.Long, "2950", "69.84"))

	// Bob unfollows with a BTC long and an ETH short open: closed at market,
	// fund released (R19, R22); asking again moves nothing (R22).
	s.unfollow(bob)
	s.unfollow(bob)

	// 18-22. The trader adds to the ETH short (filled at 2,960; the market
	// at 2,950 is 0.34% worse for a short, within spread protection, R10),
	// tops its margin up by 10%, closes half, then closes everything.
	s.publish("e18", evOpen(ethSwap, copytrade.Short, copytrade.Isolated, "5", "500", "10000", "2960", "8.46"))
	s.pinOrder(small, "e18", "filled", "0.08", "4.72", "0.0118")
	s.publish("e19", evMargin(ethSwap, copytrade.Short, "213.1288"))
	s.mark(ethSwap, "2850")
	s.publish("e20", evClose(ethSwap, copytrade.Short, "2850", "18.05"))
	s.publish("e21", evClose(btcSwap, copytrade.Long, "65000", "10.8"))
	s.publish("e22", evClose(ethSwap, copytrade.Short, "2850", "18.05"))
	if carol.status != "ended" {
		t.Fatalf("carol should have been released once flat (R19): %s", carol)
	}
	s.unfollow(small)

	if s.events < 20 {
		t.Fatalf("the session published %d trader events, want at least 20", s.events)
	}
	s.finalChecks()
	s.report()
}

// session drives the system and the reference model side by side.
type session struct {
	t      *testing.T
	ctx    context.Context
	e      *testenv.Env
	trader string
	marks  map[string]decimal.Decimal
	book   refBook
	fs     []*refFollower
	sent   map[string]copytrade.TraderEvent
	seqs   map[string]int64
	events int
	// stops records how long each stop loss took to reach its
	// relationship after the price move (R21).
	stops map[string]time.Duration
}

func newSession(t *testing.T, e *testenv.Env) *session {
	return &session{t: t, ctx: context.Background(), e: e, trader: e.ID("lead"), marks: map[string]decimal.Decimal{},
		book: refBook{}, sent: map[string]copytrade.TraderEvent{}, seqs: map[string]int64{}, stops: map[string]time.Duration{}}
}

func evOpen(inst string, side copytrade.Side, mode copytrade.MarginMode, lev, margin, equity, price, size string) copytrade.TraderEvent {
	return copytrade.TraderEvent{Kind: copytrade.EventOpen, InstID: inst, Side: side, MarginMode: mode,
		Leverage: d(lev), Margin: d(margin), Equity: d(equity), Price: d(price), Size: d(size)}
}

func evClose(inst string, side copytrade.Side, price, size string) copytrade.TraderEvent {
	return copytrade.TraderEvent{Kind: copytrade.EventClose, InstID: inst, Side: side, Price: d(price), Size: d(size)}
}

func evLeverage(inst string, side copytrade.Side, lev string) copytrade.TraderEvent {
	return copytrade.TraderEvent{Kind: copytrade.EventLeverage, InstID: inst, Side: side, Leverage: d(lev)}
}

func evMargin(inst string, side copytrade.Side, delta string) copytrade.TraderEvent {
	return copytrade.TraderEvent{Kind: copytrade.EventMargin, InstID: inst, Side: side, MarginDelta: d(delta)}
}

// follow deposits and follows; the model does the same.
func (s *session) follow(name, deposit, investment, stopLoss string, mode copytrade.StopMode) *refFollower {
	s.t.Helper()
	f := newRefFollower(name, s.e.ID(name))
	_, err := s.e.Store.Deposit(s.ctx, f.id, d(deposit), "deposit/"+f.id)
	must(s.t, err)
	f.deposits, f.available = d(deposit), d(deposit)
	req := copytrade.FollowRequest{FollowerID: f.id, TraderID: s.trader, Investment: d(investment), StopMode: mode}
	if stopLoss != "" {
		req.StopLoss = d(stopLoss)
	}
	res, err := s.e.API.Follow(s.ctx, req)
	must(s.t, err)
	f.relID = res.RelationshipID
	if mode == "" {
		mode = copytrade.MarketClose
	}
	f.follow(req.Investment, req.StopLoss, mode)
	s.fs = append(s.fs, f)
	s.verify(f)
	return f
}

// mark moves a mark price. Every relationship whose stop loss the move
// reaches must stop by itself, within seconds, with no trade (R20, R21).
func (s *session) mark(inst, price string) {
	s.t.Helper()
	moved := time.Now()
	must(s.t, s.e.Store.SetMarkPrice(s.ctx, inst, d(price)))
	s.marks[inst] = d(price)
	for _, f := range s.fs {
		if !f.breached(s.marks) {
			continue
		}
		f.stop(workflows.StopLoss, s.marks)
		st := s.e.WaitState(s.ctx, f.id, s.trader, "stopped by its stop loss", func(st workflows.State) bool {
			return st.Status != workflows.StatusActive && st.StopReason == workflows.StopLoss
		})
		s.stops[f.name] = time.Since(moved)
		if s.stops[f.name] > 10*time.Second {
			s.t.Errorf("%s: the stop loss took %s to reach the relationship (R21: within seconds)", f.name, s.stops[f.name])
		}
		if string(st.Status) != f.status {
			s.t.Errorf("%s: status %s after the stop, want %s", f.name, st.Status, f.status)
		}
	}
	for _, f := range s.fs {
		s.verify(f)
	}
}

// publish sends one trader event through the publishing API, waits until
// every live relationship applied it, and checks every follower.
func (s *session) publish(name string, ev copytrade.TraderEvent) api.PublishReport {
	s.t.Helper()
	ev.EventID, ev.TraderID = s.e.ID(name), s.trader
	recorded := s.book.record(ev)
	var live []*refFollower
	for _, f := range s.fs {
		if !f.live() {
			continue
		}
		live = append(live, f)
		f.apply(recorded, s.marks)
		if f.breached(s.marks) {
			s.t.Fatalf("%s: the script did not mean %s to reach the stop loss (net %s)", f.name, name, f.net(s.marks))
		}
		if ev.Kind != copytrade.EventOpen {
			f.releaseIfFlat()
		}
	}
	rep, err := s.e.Publisher.Publish(s.ctx, ev)
	must(s.t, err)
	if rep.Duplicate || rep.Delivered != len(live) {
		s.t.Fatalf("%s: delivered to %d (duplicate %v), want %d", name, rep.Delivered, rep.Duplicate, len(live))
	}
	// The book fills what followers need from the trader's position.
	requireEqual(s.t, name+" size before (R12)", recorded.SizeBefore.String(), rep.Event.SizeBefore)
	requireEqual(s.t, name+" margin before (R16)", recorded.MarginBefore.String(), rep.Event.MarginBefore)
	s.sent[name], s.seqs[name] = ev, rep.Event.Seq
	s.events++
	for _, f := range live {
		st := s.e.WaitApplied(s.ctx, f.id, s.trader, rep.Event.Seq)
		if string(st.Status) != f.status {
			s.t.Errorf("%s after %s: workflow status %s, model %s", f.name, name, st.Status, f.status)
		}
		if f.status != "ended" {
			requireEqual(s.t, f.name+" workflow realized after "+name, f.realized.String(), st.Fund.Figures.RealizedPnL)
			requireEqual(s.t, f.name+" workflow fees after "+name, f.fees.String(), st.Fund.Figures.Fees)
			requireEqual(s.t, f.name+" workflow used after "+name, f.used().String(), st.Fund.Figures.Used)
		}
	}
	for _, f := range s.fs {
		s.verify(f)
	}
	return rep
}

// republish delivers an event a second time, as an upstream retry would:
// it is recorded once and every relationship ignores it (R24).
func (s *session) republish(name string) {
	s.t.Helper()
	before := map[string]int64{}
	for _, f := range s.fs {
		if f.live() {
			before[f.name] = s.state(f).Counters.Duplicates
		}
	}
	rep, err := s.e.Publisher.Publish(s.ctx, s.sent[name])
	must(s.t, err)
	if !rep.Duplicate || rep.Event.Seq != s.seqs[name] {
		s.t.Fatalf("%s published again: duplicate %v, seq %d, want the first seq %d", name, rep.Duplicate, rep.Event.Seq, s.seqs[name])
	}
	for _, f := range s.fs {
		if !f.live() {
			continue
		}
		s.e.WaitState(s.ctx, f.id, s.trader, "duplicate ignored", func(st workflows.State) bool {
			return st.Counters.Duplicates == before[f.name]+1
		})
		s.verify(f)
	}
}

// changeInvestment raises or lowers a follower's investment (R18) and
// checks the figures the update answers with.
func (s *session) changeInvestment(f *refFollower, dir, amount string) {
	s.t.Helper()
	delta := d(amount)
	if dir == workflows.Lower {
		delta = delta.Neg()
	}
	fv, err := s.e.API.ChangeInvestment(s.ctx, f.id, s.trader, workflows.InvestmentRequest{Direction: dir, Amount: d(amount)})
	must(s.t, err)
	f.changeInvestment(delta)
	what := fmt.Sprintf("%s %s %s answers", f.name, dir, amount)
	requireEqual(s.t, what+" investment (R18)", f.investment.String(), fv.Figures.Investment)
	requireEqual(s.t, what+" equity (R17)", f.equity().String(), fv.Figures.Equity)
	requireEqual(s.t, what+" used (R17)", f.used().String(), fv.Figures.Used)
	requireEqual(s.t, what+" available (R17)", f.avail().String(), fv.Figures.Available)
	s.verify(f)
}

// refuseInvestment asks for a change the rules refuse: it names the field
// and moves nothing (R18, R25).
func (s *session) refuseInvestment(f *refFollower, dir, amount, field string) {
	s.t.Helper()
	_, err := s.e.API.ChangeInvestment(s.ctx, f.id, s.trader, workflows.InvestmentRequest{Direction: dir, Amount: d(amount)})
	if err == nil || !strings.HasPrefix(err.Error(), field+": ") {
		s.t.Errorf("%s %s %s: want a refusal naming %s, got %v", f.name, dir, amount, field, err)
	}
	s.verify(f)
}

// unfollow asks the relationship to stop (R22) and checks the release.
func (s *session) unfollow(f *refFollower) {
	s.t.Helper()
	f.stop(workflows.StopUnfollow, s.marks)
	res, err := s.e.API.Unfollow(s.ctx, f.id, s.trader)
	must(s.t, err)
	if string(res.Status) != f.status {
		s.t.Errorf("%s unfollow: status %s, want %s", f.name, res.Status, f.status)
	}
	requireEqual(s.t, f.name+" released (R19)", f.released.String(), res.Released)
	s.verify(f)
}

func (s *session) state(f *refFollower) workflows.State {
	s.t.Helper()
	v, err := s.e.API.State(s.ctx, f.id, s.trader)
	must(s.t, err)
	return v.State
}

// verify compares one follower's money, positions, orders and status in
// PostgreSQL with the model.
func (s *session) verify(f *refFollower) {
	t := s.t
	t.Helper()
	requireEqual(t, f.name+" available balance", f.available.String(), mustBalance(t, s.e, f.id))
	requireEqual(t, f.name+" fund balance", f.fund.String(), balance(t, s.e, ledger.Fund(f.relID)))
	if f.status != "ended" {
		fig, positions, err := s.e.Store.Figures(s.ctx, f.relID)
		must(t, err)
		requireEqual(t, f.name+" investment", f.investment.String(), fig.Investment)
		requireEqual(t, f.name+" realized PnL (R14)", f.realized.String(), fig.RealizedPnL)
		requireEqual(t, f.name+" fees (R14)", f.fees.String(), fig.Fees)
		requireEqual(t, f.name+" equity (R17)", f.equity().String(), fig.Equity)
		requireEqual(t, f.name+" used (R17)", f.used().String(), fig.Used)
		requireEqual(t, f.name+" available (R17)", f.avail().String(), fig.Available)
		requireEqual(t, f.name+" unrealized (R20)", f.unrealized(s.marks).String(), fig.UnrealizedPnL)
		requireEqual(t, f.name+" net PnL (R20)", f.net(s.marks).String(), fig.NetPnL)
		want := f.positions()
		if len(positions) != len(want) {
			t.Fatalf("%s: positions %+v, model %s", f.name, positions, f)
		}
		for i, p := range positions {
			m := want[i]
			what := fmt.Sprintf("%s %s %s", f.name, p.InstID, p.Side)
			if p.InstID != m.inst || p.Side != m.side || p.MarginMode != m.mode {
				t.Errorf("%s: position %s %s %s, model %s %s %s", what, p.InstID, p.Side, p.MarginMode, m.inst, m.side, m.mode)
			}
			requireEqual(t, what+" size", m.size.String(), p.Size)
			requireEqual(t, what+" average price (R8)", m.avg.String(), p.AvgPrice)
			requireEqual(t, what+" leverage", m.lev.String(), p.Leverage)
			requireEqual(t, what+" margin", m.margin.String(), p.Margin)
		}
	}
	orders, err := s.e.Store.Orders(s.ctx, f.relID)
	must(t, err)
	if len(orders) != len(f.orders) {
		var got []string
		for _, o := range orders {
			got = append(got, o.TraderEventID+" "+string(o.Action)+" "+string(o.Status)+" "+o.Reason)
		}
		t.Fatalf("%s: %d orders %v, model %d %+v", f.name, len(orders), got, len(f.orders), f.orders)
	}
	for i, o := range orders {
		m := f.orders[i]
		what := f.name + " order " + m.key
		if o.ClientOrderID != f.relID+":"+m.key || string(o.Action) != m.action || string(o.Status) != m.status || o.Reason != m.reason {
			t.Errorf("%s: %s %s %s %q, model %s %s %q", what, o.ClientOrderID, o.Action, o.Status, o.Reason, m.action, m.status, m.reason)
		}
		requireEqual(t, what+" size", m.size.String(), o.Size)
		requireEqual(t, what+" price", m.price.String(), o.Price)
		requireEqual(t, what+" fee", m.fee.String(), o.Fee)
		requireEqual(t, what+" margin", m.margin.String(), o.Margin)
		requireEqual(t, what+" gross PnL", m.gross.String(), o.GrossPnL)
	}
	syncs, err := s.e.Store.RiskSyncs(s.ctx, f.relID)
	must(t, err)
	var got []string
	for _, r := range syncs {
		got = append(got, riskSyncText(r))
	}
	if strings.Join(got, " ") != strings.Join(s.syncTexts(f), " ") {
		t.Errorf("%s: risk syncs %v, model %v", f.name, got, s.syncTexts(f))
	}
	// The projection's status is written by an activity right after the
	// workflow's own; give it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rel, err := s.e.Store.Relationship(s.ctx, f.relID)
		must(t, err)
		if rel.Status == f.status {
			if f.status == "ended" && (rel.Released == nil || !rel.Released.Equal(f.released)) {
				t.Errorf("%s: projection released %v, want %s", f.name, rel.Released, f.released)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: projection status %s, model %s", f.name, rel.Status, f.status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func riskSyncText(r store.RiskSync) string {
	out := r.TraderEventID + ":" + string(r.Status)
	if r.Reason != "" {
		out += ":" + r.Reason
	}
	return out
}

// syncTexts are the model's syncs with the test's event ids.
func (s *session) syncTexts(f *refFollower) []string {
	return f.syncs
}

// pinOrder checks an order in PostgreSQL against hand-computed figures.
// status is "filled" or "rejected:<reason>".
func (s *session) pinOrder(f *refFollower, event, status, size, margin, fee string) {
	s.t.Helper()
	o, err := s.e.Store.Order(s.ctx, f.relID+":"+s.e.ID(event))
	must(s.t, err)
	got := string(o.Status)
	if o.Reason != "" {
		got += ":" + o.Reason
	}
	if got != status {
		s.t.Errorf("%s %s: %s, want %s", f.name, event, got, status)
	}
	requireEqual(s.t, f.name+" "+event+" size", size, o.Size)
	requireEqual(s.t, f.name+" "+event+" margin", margin, o.Margin)
	requireEqual(s.t, f.name+" "+event+" fee", fee, o.Fee)
}

// pinPosition checks a position in PostgreSQL against hand-computed figures.
func (s *session) pinPosition(f *refFollower, inst string, side copytrade.Side, size, avg, margin string) {
	s.t.Helper()
	_, positions, err := s.e.Store.Figures(s.ctx, f.relID)
	must(s.t, err)
	for _, p := range positions {
		if p.InstID == inst && p.Side == side {
			what := fmt.Sprintf("%s %s %s", f.name, inst, side)
			requireEqual(s.t, what+" size", size, p.Size)
			requireEqual(s.t, what+" average price", avg, p.AvgPrice)
			requireEqual(s.t, what+" margin", margin, p.Margin)
			return
		}
	}
	s.t.Errorf("%s: no %s %s position", f.name, inst, side)
}

// pinSync checks the outcomes of a trader event's syncs in PostgreSQL, in
// order: "applied", "failed:<reason>", "skipped[:<reason>]".
func (s *session) pinSync(f *refFollower, event string, outcomes ...string) {
	s.t.Helper()
	syncs, err := s.e.Store.RiskSyncs(s.ctx, f.relID)
	must(s.t, err)
	var got []string
	for _, r := range syncs {
		if r.TraderEventID == s.e.ID(event) {
			got = append(got, strings.TrimPrefix(riskSyncText(r), r.TraderEventID+":"))
		}
	}
	if strings.Join(got, " ") != strings.Join(outcomes, " ") {
		s.t.Errorf("%s %s syncs: %v, want %v", f.name, event, got, outcomes)
	}
}

// pinNote checks the workflow query's latest order note (R26).
func (s *session) pinNote(f *refFollower, result string) {
	s.t.Helper()
	st := s.state(f)
	if n := len(st.RecentOrders); n == 0 || st.RecentOrders[n-1].Result != result {
		s.t.Errorf("%s: latest order note %+v, want %q", f.name, st.RecentOrders, result)
	}
}

// checkSizing reads an order's sizing inputs and plan (R26): what the
// follower sees when asking why their margin differs from the trader's.
func (s *session) checkSizing(f *refFollower, event, ratio, target string, minSize bool) {
	s.t.Helper()
	o, err := s.e.Store.Order(s.ctx, f.relID+":"+s.e.ID(event))
	must(s.t, err)
	var sizing struct {
		TraderEventID string `json:"trader_event_id"`
		Inputs        struct {
			Investment decimal.Decimal `json:"investment"`
		} `json:"inputs"`
		Plan struct {
			Ratio          decimal.Decimal `json:"ratio"`
			TargetMargin   decimal.Decimal `json:"target_margin"`
			MinSizeApplied bool            `json:"min_size_applied"`
		} `json:"plan"`
	}
	if err := json.Unmarshal(o.Sizing, &sizing); err != nil {
		s.t.Fatalf("%s %s sizing %s: %v", f.name, event, o.Sizing, err)
	}
	if sizing.TraderEventID != s.e.ID(event) || sizing.Plan.MinSizeApplied != minSize {
		s.t.Errorf("%s %s sizing (R26): %s", f.name, event, o.Sizing)
	}
	requireEqual(s.t, f.name+" "+event+" sizing investment", f.investment.String(), sizing.Inputs.Investment)
	requireEqual(s.t, f.name+" "+event+" sizing ratio (R6)", ratio, sizing.Plan.Ratio)
	requireEqual(s.t, f.name+" "+event+" sizing target margin (R6)", target, sizing.Plan.TargetMargin)
}

// finalChecks: everyone ended and released; SPEC.md §4's invariant holds;
// notifications, investment changes and position history are as expected.
func (s *session) finalChecks() {
	t, ctx := s.t, s.ctx
	t.Helper()
	audit, err := s.e.Store.Audit(ctx)
	must(t, err)
	if !audit.OK() {
		t.Errorf("audit (SPEC §4): %v", audit.Differences)
	}
	for _, f := range s.fs {
		if f.status != "ended" {
			t.Fatalf("%s did not end: %s", f.name, f)
		}
		res := s.e.WaitClosed(ctx, f.id, s.trader)
		if string(res.Status) != f.status || res.StopReason != f.stopReason {
			t.Errorf("%s: workflow result %+v, want %s (%s)", f.name, res, f.status, f.stopReason)
		}
		requireEqual(t, f.name+" workflow released", f.released.String(), res.Released)

		// SPEC §4 by hand: available + copy funds = deposits + realized
		// gross PnL - fees, from the ledger and from the orders.
		available := mustBalance(t, s.e, f.id)
		funds := balance(t, s.e, ledger.Fund(f.relID))
		orders, err := s.e.Store.Orders(ctx, f.relID)
		must(t, err)
		gross, fees := decimal.Zero, decimal.Zero
		for _, o := range orders {
			if o.Status == "filled" {
				gross, fees = gross.Add(o.GrossPnL), fees.Add(o.Fee)
			}
		}
		requireEqual(t, f.name+" realized from orders", f.realized.String(), gross)
		requireEqual(t, f.name+" fees from orders", f.fees.String(), fees)
		requireEqual(t, f.name+" available + funds = deposits + realized - fees (SPEC §4)",
			f.deposits.Add(gross).Sub(fees).String(), available.Add(funds))
		requireEqual(t, f.name+" final available", f.available.String(), available)

		// R23: one in-app notification per failed copy, failed sync, stop
		// loss and release.
		inbox, err := s.e.Store.Inbox(ctx, f.id)
		must(t, err)
		kinds := map[string]int{}
		for _, n := range inbox {
			kinds[n.Kind]++
		}
		if fmt.Sprint(kinds) != fmt.Sprint(f.notes) {
			t.Errorf("%s: inbox %v, want %v", f.name, kinds, f.notes)
		}

		// The workflow's counters agree with the model.
		st := s.state(f)
		if st.Counters.OrdersFilled != int64(f.filled) || st.Counters.OrdersFailed != int64(f.failed) {
			t.Errorf("%s: workflow counted %d filled, %d failed; model %d, %d", f.name,
				st.Counters.OrdersFilled, st.Counters.OrdersFailed, f.filled, f.failed)
		}
	}

	// R26: bob's investment changes with their times.
	bob := s.follower("bob")
	changes, err := s.e.Store.InvestmentChanges(ctx, bob.relID)
	must(t, err)
	want := []string{"follow 1000 1000", "lower 500 500", "raise 500 1000", "release " + bob.released.String() + " 0"}
	var got []string
	for i, c := range changes {
		got = append(got, fmt.Sprintf("%s %s %s", c.Kind, c.Amount, c.InvestmentAfter))
		if i > 0 && c.CreatedAt.Before(changes[i-1].CreatedAt) {
			t.Errorf("investment changes out of time order: %+v", changes)
		}
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("bob's investment changes (R26): %v, want %v", got, want)
	}

	// R26: carol's closed positions, with open and close prices.
	carol := s.follower("carol")
	history, err := s.e.Store.PositionHistory(ctx, carol.relID)
	must(t, err)
	got = nil
	for _, h := range history {
		closePrice := "none"
		if h.AvgClosePrice != nil {
			closePrice = h.AvgClosePrice.String()
		}
		got = append(got, fmt.Sprintf("%s %s max %s open %s close %s %s", h.InstID, h.Side, h.MaxSize, h.AvgOpenPrice.String(), closePrice, h.Outcome))
	}
	sort.Strings(got)
	wantHistory := []string{
		"BTC-USDT-SWAP long max 2.46 open 60650.4065040650406504 close 64495.9349593495934959 closed",
		"BTC-USDT-SWAP short max 9.67 open 62000 close 65000 closed",
		"ETH-USDT-SWAP long max 3 open 3000 close 2950 closed",
		"ETH-USDT-SWAP short max 6.9 open 2950.9420289855072464 close 2860 closed",
	}
	if strings.Join(got, "\n") != strings.Join(wantHistory, "\n") {
		t.Errorf("carol's position history (R26):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantHistory, "\n"))
	}
}

func (s *session) follower(name string) *refFollower {
	for _, f := range s.fs {
		if f.name == name {
			return f
		}
	}
	s.t.Fatalf("no follower %s", name)
	return nil
}

// report logs the session's figures.
func (s *session) report() {
	s.t.Logf("session: %d trader events (+1 duplicate delivery)", s.events)
	for _, f := range s.fs {
		byReason := map[string]int{}
		for _, o := range f.orders {
			if o.status == "rejected" {
				byReason[o.reason]++
			}
		}
		s.t.Logf("%-5s deposits %s, realized %s, fees %s, released %s, final available %s; orders %d (copies filled %d, failed %v), syncs %v, notifications %v, stop %s %s",
			f.name, f.deposits, f.realized, f.fees, f.released, f.available, len(f.orders), f.filled, byReason, f.syncs, f.notes, f.stopReason, s.stops[f.name])
	}
}
