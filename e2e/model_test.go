package e2e

// A reference model of SPEC.md §2, written for the end-to-end session
// (session_test.go) with plain decimal arithmetic: it computes, for every
// follower, what each trader event should do to the copy fund, the
// positions, the orders and the notifications, so the session can compare
// PostgreSQL and the workflow against figures worked out independently of
// the code under test. It calls none of package copytrade's functions; it
// uses copytrade's types only to speak the same language as the events.
//
// The rounding it applies is the one the product documents: money to 8
// decimal places half to even; margins and fees rounded up to 8 places (a
// venue never charges less); sizes floored to the lot (R7) for opens and
// rounded to the nearest lot for proportional closes (R12); average prices
// kept to 16 places.

import (
	"fmt"
	"sort"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

const (
	btcSwap = "BTC-USDT-SWAP"
	ethSwap = "ETH-USDT-SWAP"
)

// refInst is a listing as schema/0002_venue.sql seeds it, retyped here.
type refInst struct{ ctVal, lot, minSize, maxLev, feeRate, maintRate decimal.Decimal }

var refInstruments = map[string]refInst{
	btcSwap: {ctVal: d("0.01"), lot: d("0.01"), minSize: d("0.01"), maxLev: d("100"), feeRate: d("0.0005"), maintRate: d("0.004")},
	ethSwap: {ctVal: d("0.1"), lot: d("0.01"), minSize: d("0.01"), maxLev: d("100"), feeRate: d("0.0005"), maintRate: d("0.004")},
}

// refSpread is R10's 0.5%.
var refSpread = d("0.005")

func refMoney(x decimal.Decimal) decimal.Decimal { return x.RoundBank(8) }
func refUp8(x decimal.Decimal) decimal.Decimal   { return x.RoundCeil(8) }

func refNotional(inst refInst, size, price decimal.Decimal) decimal.Decimal {
	return refMoney(size.Mul(price).Mul(inst.ctVal))
}

func refSign(side copytrade.Side) decimal.Decimal {
	if side == copytrade.Short {
		return decimal.NewFromInt(-1)
	}
	return decimal.NewFromInt(1)
}

func refKey(inst string, side copytrade.Side) string { return inst + "/" + string(side) }

// refPos is a position: of a follower's copy fund, or of the trader's book.
type refPos struct {
	inst   string
	side   copytrade.Side
	size   decimal.Decimal
	avg    decimal.Decimal
	lev    decimal.Decimal
	mode   copytrade.MarginMode
	margin decimal.Decimal
}

// merge adds a fill (R8): sizes and margins add, the average open price is
// the size-weighted average, leverage and mode become the fill's.
func (p *refPos) merge(size, price, margin, lev decimal.Decimal, mode copytrade.MarginMode) {
	total := p.size.Add(size)
	if p.size.IsZero() {
		p.avg = price
	} else {
		p.avg = p.size.Mul(p.avg).Add(size.Mul(price)).DivRound(total, 16)
	}
	p.size, p.margin, p.lev, p.mode = total, p.margin.Add(margin), lev, mode
}

// notionalAtAvg is the position's value at its average open price, what a
// leverage change re-margins (R15).
func (p *refPos) notionalAtAvg() decimal.Decimal {
	return refNotional(refInstruments[p.inst], p.size, p.avg)
}

// refBook is the lead trader's book, which fills each close with the size
// before it (R12) and each margin change with the margin before it (R16).
type refBook map[string]*refPos

// record applies a trader event to the book and returns it with SizeBefore
// and MarginBefore as the book gives them.
func (b refBook) record(ev copytrade.TraderEvent) copytrade.TraderEvent {
	k := refKey(ev.InstID, ev.Side)
	p := b[k]
	switch ev.Kind {
	case copytrade.EventOpen:
		if p == nil {
			p = &refPos{inst: ev.InstID, side: ev.Side}
			b[k] = p
		}
		p.merge(ev.Size, ev.Price, ev.Margin, ev.Leverage, ev.MarginMode)
	case copytrade.EventClose:
		ev.SizeBefore = p.size
		after := p.size.Sub(ev.Size)
		p.margin = refMoney(p.margin.Mul(after).DivRound(p.size, 16))
		p.size = after
		if after.IsZero() {
			delete(b, k)
		}
	case copytrade.EventLeverage:
		if p.mode == copytrade.Isolated {
			p.margin = refUp8(p.notionalAtAvg().Div(ev.Leverage))
		}
		p.lev = ev.Leverage
	case copytrade.EventMargin:
		ev.MarginBefore = p.margin
		p.margin = p.margin.Add(ev.MarginDelta)
	}
	return ev
}

// refOrder is an orders row as the model expects it. key is what follows
// "<relationship>:" in the client order id: the trader event id, or
// "<reason>/<instrument>/<side>" for a stop's market close.
type refOrder struct {
	key, action, status, reason     string
	size, price, fee, margin, gross decimal.Decimal
}

// refFollower is one follower and its one relationship.
type refFollower struct {
	name, id, relID string
	// deposits and available are the follower's account; fund is the copy
	// fund's ledger balance (investment + realized - fees, R17).
	deposits, available decimal.Decimal
	investment, fund    decimal.Decimal
	realized, fees      decimal.Decimal
	stopLoss            decimal.Decimal
	stopMode            copytrade.StopMode
	status              string // active, stopping, ended
	stopReason          string
	released            decimal.Decimal
	pos                 map[string]*refPos
	orders              []refOrder
	// pending are leverage or margin syncs that failed for lack of funds,
	// to try again when the follower adds funds (R15, R16).
	pending []copytrade.TraderEvent
	// notes counts notifications by kind (R23).
	notes map[string]int
	// filled and failed count copies of trader events (not stop closes).
	filled, failed int
	// syncs lists the outcome of each leverage or margin sync attempt that
	// reached the venue, as "<event>:<status>[:<reason>]".
	syncs []string
}

func newRefFollower(name, id string) *refFollower {
	return &refFollower{name: name, id: id, pos: map[string]*refPos{}, notes: map[string]int{}}
}

func (f *refFollower) used() decimal.Decimal {
	u := decimal.Zero
	for _, p := range f.pos {
		u = u.Add(p.margin)
	}
	return u
}

// avail is the fund's available amount: equity - used (R17).
func (f *refFollower) avail() decimal.Decimal { return f.fund.Sub(f.used()) }

func (f *refFollower) equity() decimal.Decimal { return f.investment.Add(f.realized).Sub(f.fees) }

func (f *refFollower) unrealized(marks map[string]decimal.Decimal) decimal.Decimal {
	u := decimal.Zero
	for _, p := range f.pos {
		u = u.Add(refMoney(marks[p.inst].Sub(p.avg).Mul(p.size).Mul(refInstruments[p.inst].ctVal).Mul(refSign(p.side))))
	}
	return u
}

// net is R20's net PnL: realized - fees + unrealized at mark.
func (f *refFollower) net(marks map[string]decimal.Decimal) decimal.Decimal {
	return f.realized.Sub(f.fees).Add(f.unrealized(marks))
}

func (f *refFollower) live() bool { return f.status == "active" || f.status == "stopping" }

// positions lists the open positions by key, as PostgreSQL orders them.
func (f *refFollower) positions() []*refPos {
	keys := make([]string, 0, len(f.pos))
	for k := range f.pos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*refPos, len(keys))
	for i, k := range keys {
		out[i] = f.pos[k]
	}
	return out
}

func (f *refFollower) order(key string) (refOrder, bool) {
	for _, o := range f.orders {
		if o.key == key {
			return o, true
		}
	}
	return refOrder{}, false
}

// follow moves the investment into the copy fund (R2).
func (f *refFollower) follow(investment, stopLoss decimal.Decimal, mode copytrade.StopMode) {
	f.available = f.available.Sub(investment)
	f.investment, f.fund = investment, investment
	f.stopLoss, f.stopMode, f.status = stopLoss, mode, "active"
}

// apply copies one trader event (as recorded, with SizeBefore and
// MarginBefore) at the given marks.
func (f *refFollower) apply(ev copytrade.TraderEvent, marks map[string]decimal.Decimal) {
	switch f.status {
	case "active":
	case "stopping":
		// copy_close: nothing new opens; closes and risk changes of what
		// is held are still followed (R1).
		if ev.Kind == copytrade.EventOpen {
			return
		}
	default:
		return
	}
	key := refKey(ev.InstID, ev.Side)
	if ev.Kind == copytrade.EventLeverage {
		f.dropPending(key) // a newer leverage change replaces a waiting sync
	}
	switch ev.Kind {
	case copytrade.EventOpen:
		f.open(ev, marks[ev.InstID])
	case copytrade.EventClose:
		f.closeFor(ev, marks[ev.InstID])
	case copytrade.EventLeverage, copytrade.EventMargin:
		f.sync(ev, true)
	}
	if f.pos[key] == nil {
		f.dropPending(key) // the position a waiting sync was about is gone
	}
}

// dropPending forgets the syncs waiting for funds on key.
func (f *refFollower) dropPending(key string) {
	var kept []copytrade.TraderEvent
	for _, ev := range f.pending {
		if refKey(ev.InstID, ev.Side) != key {
			kept = append(kept, ev)
		}
	}
	f.pending = kept
}

// open applies R6, R7, R9, R10 and R11 to a trader open.
func (f *refFollower) open(ev copytrade.TraderEvent, mark decimal.Decimal) {
	inst := refInstruments[ev.InstID]
	o := refOrder{key: ev.EventID, action: "open", status: "rejected"}
	fail := func(reason string) {
		o.reason = reason
		f.orders = append(f.orders, o)
		f.failed++
		f.notes["copy_failed"]++
	}
	if ev.Leverage.GreaterThan(inst.maxLev) {
		fail(copytrade.ReasonLeverageAboveMax) // R11: refused before sizing
		return
	}
	// R6: ratio = trader margin / trader equity; margin = investment x ratio.
	ratio := ev.Margin.DivRound(ev.Equity, 16)
	target := refMoney(f.investment.Mul(ratio))
	// R7: size = margin x leverage / (price x ctVal), floored to the lot;
	// the minimum size when below it.
	size := target.Mul(ev.Leverage).Div(mark.Mul(inst.ctVal)).Div(inst.lot).Floor().Mul(inst.lot)
	if size.LessThan(inst.minSize) {
		size = inst.minSize
	}
	o.size, o.price = size, mark
	// R10: a long may not fill above the trader's price x (1 + 0.5%), a
	// short not below x (1 - 0.5%).
	one := decimal.NewFromInt(1)
	if ev.Side == copytrade.Long && mark.GreaterThan(ev.Price.Mul(one.Add(refSpread))) ||
		ev.Side == copytrade.Short && mark.LessThan(ev.Price.Mul(one.Sub(refSpread))) {
		fail(copytrade.ReasonSpreadProtection)
		return
	}
	notional := refNotional(inst, size, mark)
	margin := refUp8(notional.Div(ev.Leverage))
	fee := refUp8(notional.Mul(inst.feeRate))
	// R9: margin + fee must fit in the fund's available amount.
	if margin.Add(fee).GreaterThan(f.avail()) {
		fail(copytrade.ReasonInsufficientFunds)
		return
	}
	k := refKey(ev.InstID, ev.Side)
	p := f.pos[k]
	if p == nil {
		p = &refPos{inst: ev.InstID, side: ev.Side}
		f.pos[k] = p
	}
	p.merge(size, mark, margin, ev.Leverage, ev.MarginMode)
	f.fees = f.fees.Add(fee)
	f.fund = f.fund.Sub(fee)
	o.status, o.fee, o.margin = "filled", fee, margin
	f.orders = append(f.orders, o)
	f.filled++
}

// closeFor applies R12-R14 to a trader close: the same fraction, rounded to
// the nearest lot; all of it on a full close; nothing without a position.
func (f *refFollower) closeFor(ev copytrade.TraderEvent, mark decimal.Decimal) {
	p := f.pos[refKey(ev.InstID, ev.Side)]
	if p == nil {
		return // R13
	}
	size := p.size
	if ev.Size.LessThan(ev.SizeBefore) {
		lot := refInstruments[ev.InstID].lot
		size = p.size.Mul(ev.Size.DivRound(ev.SizeBefore, 16)).Div(lot).Round(0).Mul(lot)
		size = decimal.Min(size, p.size)
	}
	if size.IsZero() {
		return
	}
	f.closePosition(p, size, mark, ev.EventID)
	f.filled++
}

// closePosition closes size of p at mark (R14): gross PnL and the fee go to
// the fund, the closed share of the margin is released.
func (f *refFollower) closePosition(p *refPos, size, mark decimal.Decimal, key string) {
	inst := refInstruments[p.inst]
	gross := refMoney(mark.Sub(p.avg).Mul(size).Mul(inst.ctVal).Mul(refSign(p.side)))
	fee := refUp8(refNotional(inst, size, mark).Mul(inst.feeRate))
	released := p.margin
	if size.LessThan(p.size) {
		released = refMoney(p.margin.Mul(size).DivRound(p.size, 16))
	}
	p.size = p.size.Sub(size)
	p.margin = p.margin.Sub(released)
	if p.size.IsZero() {
		delete(f.pos, refKey(p.inst, p.side))
	}
	f.realized = f.realized.Add(gross)
	f.fees = f.fees.Add(fee)
	f.fund = f.fund.Add(gross).Sub(fee)
	f.orders = append(f.orders, refOrder{key: key, action: "close", status: "filled",
		size: size, price: mark, fee: fee, margin: released, gross: gross})
}

// sync applies R15 or R16 and reports whether the change was applied or
// had nothing to do. first is false for a retry after funds were added.
func (f *refFollower) sync(ev copytrade.TraderEvent, first bool) bool {
	p := f.pos[refKey(ev.InstID, ev.Side)]
	if p == nil {
		// Nothing held: nothing to sync. A leverage change still asks
		// the venue, which records the skip; a margin change does not.
		if ev.Kind == copytrade.EventLeverage {
			f.syncs = append(f.syncs, ev.EventID+":skipped:"+copytrade.ReasonNoPosition)
		}
		return true
	}
	var want decimal.Decimal
	switch ev.Kind {
	case copytrade.EventLeverage:
		if ev.Leverage.Equal(p.lev) {
			f.syncs = append(f.syncs, ev.EventID+":skipped")
			return true
		}
		// R15: the margin is the notional at the average open price over
		// the new leverage, for cross and isolated positions alike.
		want = refUp8(p.notionalAtAvg().Div(ev.Leverage))
	case copytrade.EventMargin:
		if p.mode != copytrade.Isolated {
			f.syncs = append(f.syncs, ev.EventID+":skipped:margin_mode_mismatch")
			return true
		}
		// R16: follower delta = trader delta x follower margin / trader
		// margin before.
		want = p.margin.Add(refMoney(ev.MarginDelta.Mul(p.margin).DivRound(ev.MarginBefore, 16)))
	}
	if want.Sub(p.margin).GreaterThan(f.avail()) {
		f.syncs = append(f.syncs, ev.EventID+":failed:"+copytrade.ReasonInsufficientFunds)
		if first {
			f.pending = append(f.pending, ev)
			f.notes["sync_failed"]++
		}
		return false
	}
	f.syncs = append(f.syncs, ev.EventID+":applied")
	p.margin = want
	if ev.Kind == copytrade.EventLeverage {
		p.lev = ev.Leverage
	}
	return true
}

// changeInvestment raises (delta > 0) or lowers the investment (R18); a
// raise retries the syncs waiting for funds (R15).
func (f *refFollower) changeInvestment(delta decimal.Decimal) {
	f.investment = f.investment.Add(delta)
	f.fund = f.fund.Add(delta)
	f.available = f.available.Sub(delta)
	if delta.IsPositive() {
		var still []copytrade.TraderEvent
		for _, ev := range f.pending {
			if !f.sync(ev, false) {
				still = append(still, ev)
			}
		}
		f.pending = still
	}
}

// stop handles an unfollow or a stop loss per the stop setting (R1, R20,
// R22): market_close closes everything at the marks now; copy_close waits
// for the trader's closes. A flat fund is released (R19).
func (f *refFollower) stop(reason string, marks map[string]decimal.Decimal) {
	if f.status != "active" {
		return
	}
	f.status, f.stopReason = "stopping", reason
	if reason == "stop_loss" {
		f.notes["stop_loss"]++
	}
	if f.stopMode == copytrade.MarketClose {
		for _, p := range f.positions() {
			f.closePosition(p, p.size, marks[p.inst], reason+"/"+refKey(p.inst, p.side))
		}
	}
	f.releaseIfFlat()
}

// releaseIfFlat ends a stopping relationship that holds nothing: the whole
// fund goes back to the available balance (R19).
func (f *refFollower) releaseIfFlat() {
	if f.status != "stopping" || len(f.pos) > 0 {
		return
	}
	f.released = f.fund
	f.available = f.available.Add(f.fund)
	f.fund = decimal.Zero
	f.status = "ended"
	f.notes["released"]++
}

// breached is R20's test.
func (f *refFollower) breached(marks map[string]decimal.Decimal) bool {
	return f.status == "active" && f.stopLoss.IsPositive() && f.net(marks).LessThanOrEqual(f.stopLoss.Neg())
}

func (f *refFollower) String() string {
	return fmt.Sprintf("%s: status %s, investment %s, fund %s (realized %s, fees %s), used %s, available %s",
		f.name, f.status, f.investment, f.fund, f.realized, f.fees, f.used(), f.available)
}
