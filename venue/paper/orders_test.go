package paper_test

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/venue"
	"smartcopy/venue/paper"
)

// TestPlaceOrderSeedExample_R6_R7 places the seed's example: trader equity
// 10,000 puts 1,000 margin at 5x cross long on BTC; a follower with 1,000
// invested opens 0.83 contracts (100 target margin, floored to the lot) at
// mark 60,000: margin 99.6, fee 0.249. Placing the same client order id
// again returns the first fill and changes nothing.
func TestPlaceOrderSeedExample_R6_R7(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")

	inst, err := e.v.Instrument(e.ctx, btc)
	if err != nil {
		t.Fatal(err)
	}
	in := copytrade.OpenInputs{TraderMargin: d("1000"), TraderEquity: d("10000"), Leverage: d("5"),
		MarginMode: copytrade.Cross, Investment: d("1000"), Price: d("60000")}
	plan, rej := copytrade.PlanOpen(inst, in)
	if rej != nil {
		t.Fatal(rej)
	}
	eq(t, "planned size", plan.Size, d("0.83"))
	req := openReq("r1", "r1:e1", btc, copytrade.Long, plan.Size.String(), "5", copytrade.Cross)
	req.LimitPrice = copytrade.WorstOpenPrice(copytrade.Long, d("60000"), copytrade.DefaultRules().SpreadTolerance)
	req.Sizing = map[string]any{"inputs": in, "plan": plan}

	fill := e.place(req)
	wantFilled(t, fill)
	eq(t, "fill size", fill.Size, d("0.83"))
	eq(t, "fill price", fill.Price, d("60000"))
	eq(t, "fill fee", fill.Fee, d("0.249"))
	eq(t, "fill margin", fill.Margin, d("99.6"))
	eq(t, "fill gross", fill.GrossPnL, d("0"))
	if fill.Replayed || fill.FilledAt.IsZero() {
		t.Errorf("fresh fill: replayed %v, filled at %v", fill.Replayed, fill.FilledAt)
	}
	want := copytrade.Position{InstID: btc, Side: copytrade.Long, Size: d("0.83"), AvgPrice: d("60000"),
		Leverage: d("5"), MarginMode: copytrade.Cross, Margin: d("99.6")}
	samePosition(t, "fill position", fill.Position, want)

	o := e.order("r1:e1")
	if o.Status != "filled" || o.Action != "open" || o.MarginMode != "cross" || o.TraderID != "t1" || o.TraderEventID != "ev-r1:e1" {
		t.Errorf("orders row: %+v", o)
	}
	eq(t, "orders.size", o.Size, d("0.83"))
	eq(t, "orders.price", o.Price, d("60000"))
	eq(t, "orders.fee", o.Fee, d("0.249"))
	eq(t, "orders.margin", o.Margin, d("99.6"))
	eq(t, "orders.leverage", o.Leverage, d("5"))
	if !o.LimitPrice.Valid || !o.LimitPrice.Decimal.Equal(d("60300")) {
		t.Errorf("orders.limit_price = %v, want 60300", o.LimitPrice)
	}
	var sizing struct {
		Plan copytrade.OpenPlan `json:"plan"`
	}
	if err := json.Unmarshal(o.Sizing, &sizing); err != nil || !sizing.Plan.TargetMargin.Equal(d("100")) {
		t.Errorf("orders.sizing = %s (%v), want the plan with target margin 100", o.Sizing, err)
	}

	p, ok := e.position("r1", btc, copytrade.Long)
	if !ok {
		t.Fatal("no positions row")
	}
	eq(t, "positions.size", p.Size, d("0.83"))
	eq(t, "positions.avg_price", p.AvgPrice, d("60000"))
	eq(t, "positions.margin", p.Margin, d("99.6"))
	eq(t, "positions.max_size", p.MaxSize, d("0.83"))
	eq(t, "positions.fees", p.Fees, d("0.249"))
	eq(t, "fund balance", e.balance(ledger.Fund("r1")), d("999.751"))
	eq(t, "venue fees", e.balance(ledger.VenueFees), d("0.249"))
	if n := e.count(`select count(*) from ledger_transactions where idempotency_key = 'order/r1:e1' and kind = 'open_fee'`); n != 1 {
		t.Errorf("%d open_fee moves, want 1", n)
	}

	// R7's retry: the same client order id is the same order.
	again := e.place(req)
	if !again.Replayed {
		t.Error("second placement not marked replayed")
	}
	again.Replayed = false
	if !sameFill(again, fill) {
		t.Errorf("replay = %+v, want %+v", again, fill)
	}
	eq(t, "fund balance after replay", e.balance(ledger.Fund("r1")), d("999.751"))
	eq(t, "venue fees after replay", e.balance(ledger.VenueFees), d("0.249"))
	if n := e.count(`select count(*) from orders`); n != 1 {
		t.Errorf("%d orders rows, want 1", n)
	}
	p, _ = e.position("r1", btc, copytrade.Long)
	eq(t, "position size after replay", p.Size, d("0.83"))
}

// TestPlaceOrderConcurrentRetries_R7: retries racing each other place one
// order; every caller gets the same fill.
func TestPlaceOrderConcurrentRetries_R7(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")
	req := openReq("r1", "r1:e1", btc, copytrade.Long, "0.83", "5", copytrade.Cross)
	const n = 8
	fills := make([]venue.Fill, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fills[i], errs[i] = e.v.PlaceOrder(e.ctx, req)
		}()
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("placement %d: %v", i, errs[i])
		}
		wantFilled(t, fills[i])
		eq(t, "fee", fills[i].Fee, d("0.249"))
		if !fills[i].Replayed {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d fresh fills, want 1", fresh)
	}
	eq(t, "fund balance", e.balance(ledger.Fund("r1")), d("999.751"))
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "position size", p.Size, d("0.83"))
}

// TestConcurrentOpensNeverOverdraw_R9: opens of one relationship serialize
// on its fund, so the available check holds however they race.
func TestConcurrentOpensNeverOverdraw_R9(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "250") // room for two opens of 99.849
	e.mark(btc, "60000")
	const n = 6
	fills := make([]venue.Fill, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := openReq("r1", "r1:e"+string(rune('a'+i)), btc, copytrade.Long, "0.83", "5", copytrade.Cross)
			var err error
			if fills[i], err = e.v.PlaceOrder(e.ctx, req); err != nil {
				t.Errorf("placement %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	filled := 0
	for _, f := range fills {
		switch {
		case f.Status == venue.Filled:
			filled++
		case f.Reason != copytrade.ReasonInsufficientFunds:
			t.Errorf("unexpected rejection %s: %s", f.Reason, f.Detail)
		}
	}
	if filled != 2 {
		t.Errorf("%d opens filled, want 2", filled)
	}
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "position size", p.Size, d("1.66"))
	eq(t, "position margin", p.Margin, d("199.2"))
	eq(t, "fund balance", e.balance(ledger.Fund("r1")), d("249.502"))
}

// TestMergeOpens_R8: a second open on (BTC, long) merges into the position
// at the size-weighted average open price.
func TestMergeOpens_R8(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")
	wantFilled(t, e.place(openReq("r1", "r1:e1", btc, copytrade.Long, "0.83", "5", copytrade.Cross)))
	e.mark(btc, "62000")
	// 0.17 x 620 = 105.4 notional: margin 21.08, fee 0.0527.
	fill := e.place(openReq("r1", "r1:e2", btc, copytrade.Long, "0.17", "5", copytrade.Cross))
	wantFilled(t, fill)
	eq(t, "fee", fill.Fee, d("0.0527"))
	eq(t, "margin", fill.Margin, d("21.08"))
	// (0.83 x 60000 + 0.17 x 62000) / 1 = 60340
	samePosition(t, "merged", fill.Position, copytrade.Position{InstID: btc, Side: copytrade.Long, Size: d("1"),
		AvgPrice: d("60340"), Leverage: d("5"), MarginMode: copytrade.Cross, Margin: d("120.68")})
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "positions.avg_price", p.AvgPrice, d("60340"))
	eq(t, "positions.max_size", p.MaxSize, d("1"))
	eq(t, "positions.fees", p.Fees, d("0.3017"))
	eq(t, "fund", e.balance(ledger.Fund("r1")), d("999.6983"))

	// The other side is its own position.
	wantFilled(t, e.place(openReq("r1", "r1:e3", btc, copytrade.Short, "0.01", "5", copytrade.Cross)))
	got, err := e.v.Positions(e.ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Side != copytrade.Long || got[1].Side != copytrade.Short || !got[0].Size.Equal(d("1")) {
		t.Errorf("Positions = %+v, want BTC long 1 then BTC short 0.01", got)
	}
}

// TestPartialThenFullClose_R12_R14: realized PnL = (exit - avg) x size x
// ctVal minus the fee, into the fund; the average open price holds; the
// emptied position moves to history with its open and close prices.
func TestPartialThenFullClose_R12_R14(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")
	wantFilled(t, e.place(openReq("r1", "r1:open", btc, copytrade.Long, "0.83", "5", copytrade.Cross)))

	e.mark(btc, "61000")
	// 1000 x 0.42 x 0.01 = 4.2; fee 0.42 x 610 x 0.0005 = 0.1281;
	// margin released 99.6 x 0.42 / 0.83 = 50.4.
	fill := e.place(closeReq("r1", "r1:close1", btc, copytrade.Long, "0.42"))
	wantFilled(t, fill)
	eq(t, "gross", fill.GrossPnL, d("4.2"))
	eq(t, "fee", fill.Fee, d("0.1281"))
	eq(t, "released", fill.Margin, d("50.4"))
	samePosition(t, "after partial close", fill.Position, copytrade.Position{InstID: btc, Side: copytrade.Long,
		Size: d("0.41"), AvgPrice: d("60000"), Leverage: d("5"), MarginMode: copytrade.Cross, Margin: d("49.2")})
	eq(t, "fund", e.balance(ledger.Fund("r1")), d("1003.8229")) // 1000 - 0.249 + 4.2 - 0.1281
	eq(t, "venue pnl", e.balance(ledger.VenuePnL), d("-4.2"))
	p, _ := e.position("r1", btc, copytrade.Long)
	eq(t, "closed_size", p.ClosedSize, d("0.42"))
	eq(t, "close_value", p.CloseValue, d("25620"))
	eq(t, "positions.gross_pnl", p.GrossPnL, d("4.2"))
	eq(t, "positions.fees", p.Fees, d("0.3771"))

	// Asking to close more than is held closes what is held.
	e.mark(btc, "59000")
	// -1000 x 0.41 x 0.01 = -4.1; fee 0.41 x 590 x 0.0005 = 0.12095.
	fill = e.place(closeReq("r1", "r1:close2", btc, copytrade.Long, "1"))
	wantFilled(t, fill)
	eq(t, "size", fill.Size, d("0.41"))
	eq(t, "gross", fill.GrossPnL, d("-4.1"))
	eq(t, "fee", fill.Fee, d("0.12095"))
	eq(t, "released", fill.Margin, d("49.2"))
	if !fill.Position.Size.IsZero() || fill.Position.InstID != btc || fill.Position.Side != copytrade.Long {
		t.Errorf("position after full close = %+v, want empty BTC long", fill.Position)
	}
	o := e.order("r1:close2")
	eq(t, "orders.gross_pnl", o.GrossPnL, d("-4.1"))
	eq(t, "orders.leverage (the position's)", o.Leverage, d("5"))
	if o.MarginMode != "cross" || o.Action != "close" {
		t.Errorf("close order row %+v", o)
	}
	if _, ok := e.position("r1", btc, copytrade.Long); ok {
		t.Error("emptied position still in positions")
	}
	// 1000 + (4.2 - 4.1) - (0.249 + 0.1281 + 0.12095)
	eq(t, "fund", e.balance(ledger.Fund("r1")), d("999.60195"))
	eq(t, "venue pnl", e.balance(ledger.VenuePnL), d("-0.1"))
	eq(t, "venue fees", e.balance(ledger.VenueFees), d("0.49805"))

	var h struct {
		MaxSize, AvgOpen, AvgClose, Gross, Fees decimal.NullDecimal
		Outcome                                 string
	}
	if err := e.pool.QueryRow(e.ctx, `select max_size, avg_open_price, avg_close_price, gross_pnl, fees, outcome
		from position_history where relationship_id = 'r1'`).Scan(&h.MaxSize, &h.AvgOpen, &h.AvgClose, &h.Gross, &h.Fees, &h.Outcome); err != nil {
		t.Fatal(err)
	}
	eq(t, "history max_size", h.MaxSize.Decimal, d("0.83"))
	eq(t, "history avg_open_price", h.AvgOpen.Decimal, d("60000"))
	// (0.42 x 61000 + 0.41 x 59000) / 0.83 = 49810 / 0.83
	eq(t, "history avg_close_price", h.AvgClose.Decimal, d("49810").DivRound(d("0.83"), copytrade.RatioScale))
	eq(t, "history gross_pnl", h.Gross.Decimal, d("0.1"))
	eq(t, "history fees", h.Fees.Decimal, d("0.49805"))
	if h.Outcome != "closed" {
		t.Errorf("outcome %q", h.Outcome)
	}

	// R13: nothing held, nothing closed; the refusal is recorded.
	fill = e.place(closeReq("r1", "r1:close3", btc, copytrade.Long, "0.1"))
	wantRejected(t, fill, copytrade.ReasonNoPosition)
	eq(t, "fund after refused close", e.balance(ledger.Fund("r1")), d("999.60195"))
}

// TestShortClose_R14: a short gains when the price falls.
func TestShortClose_R14(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(eth, "3000")
	// 2 x 0.1 x 3000 = 600 notional at 10x: margin 60, fee 0.3.
	wantFilled(t, e.place(openReq("r1", "r1:open", eth, copytrade.Short, "2", "10", copytrade.Isolated)))
	e.mark(eth, "2900")
	fill := e.place(closeReq("r1", "r1:close", eth, copytrade.Short, "2"))
	wantFilled(t, fill)
	eq(t, "gross", fill.GrossPnL, d("20"))
	eq(t, "fee", fill.Fee, d("0.29"))
	eq(t, "fund", e.balance(ledger.Fund("r1")), d("1019.41")) // 1000 - 0.3 + 20 - 0.29
}

// TestInsufficientFunds_R9: an open needing more than the fund's available
// amount is refused and recorded; nothing moves; more money later does not
// revive it. Exactly the available amount is enough.
func TestInsufficientFunds_R9(t *testing.T) {
	e := newEnv(t)
	e.mark(btc, "60000")
	// A relationship that never got money: balance zero.
	wantRejected(t, e.place(openReq("r0", "r0:e1", btc, copytrade.Long, "0.83", "5", copytrade.Cross)), copytrade.ReasonInsufficientFunds)

	e.fund("r1", "f-r1", "follow/r1", "99.849") // margin 99.6 + fee 0.249, exactly
	fill := e.place(openReq("r1", "r1:e1", btc, copytrade.Long, "0.83", "5", copytrade.Cross))
	wantFilled(t, fill)
	// Available is now 99.849 - 0.249 - 99.6 = 0: the minimum open (1.2 +
	// 0.003) is refused.
	req := openReq("r1", "r1:e2", btc, copytrade.Long, "0.01", "5", copytrade.Cross)
	fill = e.place(req)
	wantRejected(t, fill, copytrade.ReasonInsufficientFunds)
	o := e.order("r1:e2")
	if o.Status != "rejected" || o.Reason != copytrade.ReasonInsufficientFunds || o.Detail == "" {
		t.Errorf("orders row %+v", o)
	}
	eq(t, "orders.fee", o.Fee, d("0"))
	eq(t, "orders.margin", o.Margin, d("0"))
	eq(t, "fund", e.balance(ledger.Fund("r1")), d("99.6"))
	eq(t, "venue fees", e.balance(ledger.VenueFees), d("0.249"))
	samePosition(t, "position unchanged", fill.Position, copytrade.Position{InstID: btc, Side: copytrade.Long,
		Size: d("0.83"), AvgPrice: d("60000"), Leverage: d("5"), MarginMode: copytrade.Cross, Margin: d("99.6")})
	if n := e.count(`select count(*) from ledger_transactions where idempotency_key = 'order/r1:e2'`); n != 0 {
		t.Errorf("a refused open moved money")
	}

	// Not retried when funds arrive: the same order stays refused.
	e.fund("r1", "f-r1", "raise/r1/1", "1000")
	again := e.place(req)
	wantRejected(t, again, copytrade.ReasonInsufficientFunds)
	if !again.Replayed {
		t.Error("refused order placed afresh after funds arrived")
	}
}

// TestSpreadProtection_R10: an open filling worse than its limit (the
// trader's fill + 0.5%) is refused; at the limit it fills; closes ignore
// it.
func TestSpreadProtection_R10(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	tol := copytrade.DefaultRules().SpreadTolerance

	long := openReq("r1", "r1:long1", btc, copytrade.Long, "0.01", "5", copytrade.Cross)
	long.LimitPrice = copytrade.WorstOpenPrice(copytrade.Long, d("60000"), tol) // 60300
	e.mark(btc, "60300.1")
	fill := e.place(long)
	wantRejected(t, fill, copytrade.ReasonSpreadProtection)
	eq(t, "recorded fill price", fill.Price, d("60300.1"))
	if o := e.order("r1:long1"); !o.LimitPrice.Valid || !o.LimitPrice.Decimal.Equal(d("60300")) {
		t.Errorf("orders.limit_price %v", o.LimitPrice)
	}
	eq(t, "fund after refusal", e.balance(ledger.Fund("r1")), d("1000"))

	e.mark(btc, "60300")
	long.ClientOrderID = "r1:long2"
	wantFilled(t, e.place(long))

	short := openReq("r1", "r1:short1", btc, copytrade.Short, "0.01", "5", copytrade.Cross)
	short.LimitPrice = copytrade.WorstOpenPrice(copytrade.Short, d("60000"), tol) // 59700
	e.mark(btc, "59699.9")
	wantRejected(t, e.place(short), copytrade.ReasonSpreadProtection)
	short.ClientOrderID = "r1:short2"
	e.mark(btc, "65000") // better for a short
	wantFilled(t, e.place(short))

	// A close carrying a limit still fills far beyond it.
	cl := closeReq("r1", "r1:close", btc, copytrade.Long, "0.01")
	cl.LimitPrice = d("1")
	wantFilled(t, e.place(cl))
}

// TestOpenRefusals_R11_R25: each refusal is recorded with its reason and
// moves nothing.
func TestOpenRefusals_R11_R25(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000") // ETH has no mark price
	tests := []struct {
		name   string
		req    venue.OrderRequest
		reason string
	}{
		{"unknown instrument", openReq("r1", "r1:a", "DOGE-USDT-SWAP", copytrade.Long, "1", "5", copytrade.Cross), copytrade.ReasonUnknownInstrument},
		{"leverage above max", openReq("r1", "r1:b", btc, copytrade.Long, "0.83", "100.5", copytrade.Cross), copytrade.ReasonLeverageAboveMax},
		{"zero leverage", openReq("r1", "r1:c", btc, copytrade.Long, "0.83", "0", copytrade.Cross), copytrade.ReasonInvalidLeverage},
		{"negative leverage", openReq("r1", "r1:d", btc, copytrade.Long, "0.83", "-5", copytrade.Cross), copytrade.ReasonInvalidLeverage},
		{"not a lot multiple", openReq("r1", "r1:e", btc, copytrade.Long, "0.835", "5", copytrade.Cross), copytrade.ReasonInvalidSize},
		{"zero size", openReq("r1", "r1:f", btc, copytrade.Long, "0", "5", copytrade.Cross), copytrade.ReasonInvalidSize},
		{"negative size", openReq("r1", "r1:g", btc, copytrade.Long, "-0.83", "5", copytrade.Cross), copytrade.ReasonInvalidSize},
		{"bad margin mode", openReq("r1", "r1:h", btc, copytrade.Long, "0.83", "5", "portfolio"), copytrade.ReasonInvalidMarginMode},
		{"no mark price", openReq("r1", "r1:i", eth, copytrade.Long, "1", "5", copytrade.Cross), copytrade.ReasonNoMarkPrice},
		{"close unknown instrument", closeReq("r1", "r1:j", "DOGE-USDT-SWAP", copytrade.Long, "1"), copytrade.ReasonUnknownInstrument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fill := e.place(tc.req)
			wantRejected(t, fill, tc.reason)
			if o := e.order(tc.req.ClientOrderID); o.Status != "rejected" || o.Reason != tc.reason || o.Detail != fill.Detail {
				t.Errorf("orders row %+v", o)
			}
		})
	}
	eq(t, "fund", e.balance(ledger.Fund("r1")), d("1000"))
	eq(t, "venue fees", e.balance(ledger.VenueFees), d("0"))
	if n := e.count(`select count(*) from positions`); n != 0 {
		t.Errorf("%d positions after refusals", n)
	}
	// A lot-multiple below the minimum is refused too (MIN: lot 0.1, min 0.5).
	if _, err := e.pool.Exec(e.ctx, `insert into instruments values ('MIN-USDT-SWAP', 1, 0.1, 0.5, 0.01, 20, 0.0005, 0.01)`); err != nil {
		t.Fatal(err)
	}
	e.mark("MIN-USDT-SWAP", "10")
	wantRejected(t, e.place(openReq("r1", "r1:k", "MIN-USDT-SWAP", copytrade.Long, "0.4", "5", copytrade.Cross)), copytrade.ReasonInvalidSize)
	wantFilled(t, e.place(openReq("r1", "r1:l", "MIN-USDT-SWAP", copytrade.Long, "0.5", "5", copytrade.Cross)))
	// ...but a close below the minimum is allowed, so remainders close.
	wantFilled(t, e.place(closeReq("r1", "r1:m", "MIN-USDT-SWAP", copytrade.Long, "0.1")))
	wantRejected(t, e.place(closeReq("r1", "r1:n", "MIN-USDT-SWAP", copytrade.Long, "0.15")), copytrade.ReasonInvalidSize)
}

// TestBadRequests: a request that cannot be recorded is an error of kind
// ErrInvalidRequest, and writes nothing.
func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	good := openReq("r1", "r1:e1", btc, copytrade.Long, "0.83", "5", copytrade.Cross)
	for name, change := range map[string]func(*venue.OrderRequest){
		"no client order id": func(r *venue.OrderRequest) { r.ClientOrderID = "" },
		"no relationship":    func(r *venue.OrderRequest) { r.RelationshipID = "" },
		"bad side":           func(r *venue.OrderRequest) { r.Side = "up" },
		"bad action":         func(r *venue.OrderRequest) { r.Action = "hold" },
		"unencodable sizing": func(r *venue.OrderRequest) { r.Sizing = func() {} },
	} {
		req := good
		change(&req)
		if _, err := e.v.PlaceOrder(e.ctx, req); !errors.Is(err, paper.ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", name, err)
		}
	}
	if n := e.count(`select count(*) from orders`); n != 0 {
		t.Errorf("%d orders recorded", n)
	}
}

// TestLossBeyondFund: the paper venue does not liquidate; a loss larger
// than the fund empties the fund and the venue absorbs the rest, so the
// close fills and the ledger never overdraws.
func TestLossBeyondFund(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "10")
	e.mark(btc, "60000")
	// 0.83 at 100x: margin 4.98, fee 0.249.
	wantFilled(t, e.place(openReq("r1", "r1:open", btc, copytrade.Long, "0.83", "100", copytrade.Cross)))
	e.mark(btc, "50000")
	// gross would be -83; the fund holds 9.751 and owes a 0.2075 fee.
	fill := e.place(closeReq("r1", "r1:close", btc, copytrade.Long, "0.83"))
	wantFilled(t, fill)
	eq(t, "fee", fill.Fee, d("0.2075"))
	eq(t, "gross (capped)", fill.GrossPnL, d("-9.5435"))
	eq(t, "fund", e.balance(ledger.Fund("r1")), d("0"))
	if fill.Detail == "" {
		t.Error("absorbed loss not explained")
	}
}

// TestInstrumentAndMarkPrice: look-ups name what is missing.
func TestInstrumentAndMarkPrice(t *testing.T) {
	e := newEnv(t)
	inst, err := e.v.Instrument(e.ctx, btc)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ctVal", inst.CtVal, d("0.01"))
	eq(t, "max leverage", inst.MaxLeverage, d("100"))
	eq(t, "maint rate", inst.MaintMarginRate, d("0.004"))
	if _, err := e.v.Instrument(e.ctx, "NOPE"); !errors.Is(err, venue.ErrUnknownInstrument) {
		t.Errorf("unknown instrument: %v", err)
	}
	if _, err := e.v.MarkPrice(e.ctx, "NOPE"); !errors.Is(err, venue.ErrUnknownInstrument) {
		t.Errorf("mark of unknown instrument: %v", err)
	}
	if _, err := e.v.MarkPrice(e.ctx, btc); !errors.Is(err, venue.ErrNoMarkPrice) {
		t.Errorf("missing mark: %v", err)
	}
	e.mark(btc, "60000.5")
	p, err := e.v.MarkPrice(e.ctx, btc)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "mark", p, d("60000.5"))
}

func samePosition(t *testing.T, what string, got, want copytrade.Position) {
	t.Helper()
	if got.InstID != want.InstID || got.Side != want.Side || !got.Size.Equal(want.Size) || !got.AvgPrice.Equal(want.AvgPrice) ||
		!got.Leverage.Equal(want.Leverage) || got.MarginMode != want.MarginMode || !got.Margin.Equal(want.Margin) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func sameFill(a, b venue.Fill) bool {
	return a.ClientOrderID == b.ClientOrderID && a.Status == b.Status && a.Reason == b.Reason && a.Detail == b.Detail &&
		a.Size.Equal(b.Size) && a.Price.Equal(b.Price) && a.Fee.Equal(b.Fee) && a.Margin.Equal(b.Margin) &&
		a.GrossPnL.Equal(b.GrossPnL) && a.FilledAt.Equal(b.FilledAt) && a.Replayed == b.Replayed &&
		a.Position.Size.Equal(b.Position.Size) && a.Position.Margin.Equal(b.Position.Margin) &&
		a.Position.AvgPrice.Equal(b.Position.AvgPrice)
}
