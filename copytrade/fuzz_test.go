package copytrade_test

import (
	"encoding/json"
	"testing"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// fuzzInstruments span the shapes of OKX swaps: fractional lots (BTC, ETH),
// whole-contract lots with a large contract value, and a minimum size above
// the lot size.
var fuzzInstruments = []copytrade.Instrument{
	btc,
	eth,
	{ID: "WHOLE-USDT-SWAP", CtVal: d("10"), LotSize: d("1"), MinSize: d("1"), TickSize: d("0.001"),
		MaxLeverage: d("50"), TakerFeeRate: d("0.0002"), MaintMarginRate: d("0.01")},
	{ID: "MIN-USDT-SWAP", CtVal: d("0.001"), LotSize: d("0.1"), MinSize: d("0.5"), TickSize: d("0.0001"),
		MaxLeverage: d("125"), TakerFeeRate: d("0.0007"), MaintMarginRate: d("0.005")},
}

// money turns a fuzzed integer into an amount with a given number of
// decimal places, at least one unit of the last place.
func money(n uint32, places int32, max uint32) decimal.Decimal {
	return decimal.NewFromInt(int64(n%max) + 1).Shift(-places)
}

// FuzzSizingAndClose sizes up to three opens from fuzzed trader figures,
// merges them, closes part as the trader closes a fraction and then the
// rest on the trader's full close, and checks the invariants of R6-R8 and
// R12-R14 at every step:
//   - a planned size is positive, a whole number of lots and at least the
//     minimum; its margin is at most the target margin unless the minimum
//     size was applied, and at least notional / leverage;
//   - the merged average open price lies between the fill prices;
//   - a close never takes more than the position holds, never leaves
//     negative size or margin, and keeps the average open price;
//   - after the full close, size and margin are exactly zero;
//   - the realized gross PnL summed over the closes equals the PnL computed
//     independently from the fills, (sum of exit x size - sum of open
//     price x size) x ctVal, sign-flipped for shorts, within the rounding
//     tolerance below.
//
// Tolerance: each close's GrossPnL is rounded half-even to MoneyScale (at
// most 0.5e-8 each, so 1e-8 for the two closes), and each merge rounds the
// average open price to RatioScale (at most 0.5e-16 per merge, carried
// into every later average with weight at most 1, so 1.5e-16 for three
// opens), which is multiplied by the total size x ctVal. Anything beyond
// 1e-8 + total size x ctVal x 1.5e-16 is a bug.
func FuzzSizingAndClose(f *testing.F) {
	// trader margin/equity cents, investment cents, leverage hundredths,
	// three prices and two exits in units of 10^-places (places 0 to 8:
	// low-priced coins quote to many decimals), instrument, close
	// fraction, number of opens, side.
	f.Add(uint32(100000), uint32(1000000), uint32(100000), uint16(400), uint32(6000000), uint32(6100000), uint32(5900000), uint32(6200000), uint32(5800000), uint8(0), uint8(1), uint8(2), uint8(3), uint8(2), false)
	f.Add(uint32(10000), uint32(1000000), uint32(10000), uint16(400), uint32(6000000), uint32(6000000), uint32(6000000), uint32(6000000), uint32(6000000), uint8(0), uint8(1), uint8(3), uint8(1), uint8(2), false)
	f.Add(uint32(25000), uint32(100000), uint32(50000), uint16(900), uint32(300000), uint32(310000), uint32(290000), uint32(320000), uint32(280000), uint8(1), uint8(2), uint8(3), uint8(2), uint8(2), true)
	f.Add(uint32(33300), uint32(1000000), uint32(200000), uint16(200), uint32(6123450), uint32(1), uint32(99999999), uint32(1), uint32(99999999), uint8(2), uint8(7), uint8(9), uint8(3), uint8(2), true)
	f.Add(uint32(1), uint32(3), uint32(30000), uint16(12499), uint32(17), uint32(23), uint32(31), uint32(29), uint32(37), uint8(3), uint8(1), uint8(1), uint8(3), uint8(2), false)
	f.Add(uint32(1), uint32(4000000000), uint32(10000), uint16(0), uint32(99999999), uint32(1), uint32(50), uint32(50), uint32(1), uint8(0), uint8(0), uint8(0), uint8(3), uint8(2), true)
	f.Fuzz(func(t *testing.T, mCents, eCents, invCents uint32, levHundredths uint16, p1, p2, p3, x1, x2 uint32, instPick, num, den, opens, places uint8, short bool) {
		inst := fuzzInstruments[int(instPick)%len(fuzzInstruments)]
		side := copytrade.Long
		if short {
			side = copytrade.Short
		}
		// Leverage 1.00 to the instrument's maximum, in hundredths as OKX
		// allows; prices 10^-places to 10^(8-places).
		maxHundredths := uint32(inst.MaxLeverage.IntPart()*100 - 100 + 1)
		lev := decimal.NewFromInt(int64(uint32(levHundredths)%maxHundredths) + 100).Shift(-2)
		in := copytrade.OpenInputs{
			TraderMargin: money(mCents, 2, 1e9),
			TraderEquity: money(eCents, 2, 4e9),
			Leverage:     lev,
			MarginMode:   copytrade.Isolated,
			Investment:   money(invCents, 2, 1e9),
		}
		pp := int32(places % 9)
		prices := []decimal.Decimal{money(p1, pp, 1e8), money(p2, pp, 1e8), money(p3, pp, 1e8)}
		n := 1 + int(opens)%3

		pos := copytrade.Position{InstID: inst.ID, Side: side}
		openValue := decimal.Zero
		minPrice, maxPrice := prices[0], prices[0]
		for i := 0; i < n; i++ {
			in.Price = prices[i]
			plan, rej := copytrade.PlanOpen(inst, in)
			if rej != nil {
				t.Fatalf("PlanOpen refused valid inputs %+v: %v", in, rej)
			}
			if !plan.Size.IsPositive() || !copytrade.IsLotMultiple(plan.Size, inst.LotSize) || plan.Size.LessThan(inst.MinSize) {
				t.Fatalf("size %s is not a positive whole number of %s lots at least %s (inputs %+v)", plan.Size, inst.LotSize, inst.MinSize, in)
			}
			if !plan.MinSizeApplied && plan.Margin.GreaterThan(plan.TargetMargin) {
				t.Fatalf("margin %s above target %s without the minimum size (inputs %+v, plan %+v)", plan.Margin, plan.TargetMargin, in, plan)
			}
			if plan.MinSizeApplied && !plan.Size.Equal(inst.MinSize) {
				t.Fatalf("minimum size applied but size is %s", plan.Size)
			}
			if plan.Margin.Mul(in.Leverage).LessThan(plan.Notional) {
				t.Fatalf("margin %s x %sx does not cover notional %s", plan.Margin, in.Leverage, plan.Notional)
			}
			if plan.Fee.IsNegative() {
				t.Fatalf("negative fee %s", plan.Fee)
			}
			pos = copytrade.Merge(pos, plan.Size, in.Price, plan.Margin, in.Leverage, in.MarginMode)
			openValue = openValue.Add(plan.Size.Mul(in.Price))
			minPrice, maxPrice = decimal.Min(minPrice, in.Price), decimal.Max(maxPrice, in.Price)
		}
		if pos.AvgPrice.LessThan(minPrice) || pos.AvgPrice.GreaterThan(maxPrice) {
			t.Fatalf("average %s outside the fill prices [%s, %s]", pos.AvgPrice, minPrice, maxPrice)
		}
		totalSize := pos.Size
		avg := pos.AvgPrice

		// The trader closes num/den of its position (a full close when
		// num >= den), then the rest.
		traderBefore := decimal.NewFromInt(int64(den%20) + 1)
		traderClosed := decimal.NewFromInt(int64(num % 21))
		exits := []decimal.Decimal{money(x1, pp, 1e8), money(x2, pp, 1e8)}
		realized, closeValue := decimal.Zero, decimal.Zero
		steps := [][2]decimal.Decimal{{traderClosed, traderBefore}, {decimal.NewFromInt(1), decimal.NewFromInt(1)}}
		for i, step := range steps {
			size := copytrade.CloseSize(pos.Size, step[0], step[1], inst.LotSize)
			if size.IsNegative() || size.GreaterThan(pos.Size) || !copytrade.IsLotMultiple(size, inst.LotSize) {
				t.Fatalf("close size %s of %s (trader %s of %s) is out of range", size, pos.Size, step[0], step[1])
			}
			if i == 1 && !size.Equal(pos.Size) {
				t.Fatalf("trader's full close closed %s of %s", size, pos.Size)
			}
			if size.IsZero() {
				continue
			}
			r := copytrade.Close(inst, pos, size, exits[i])
			if r.After.Size.IsNegative() || r.After.Margin.IsNegative() || r.MarginReleased.IsNegative() {
				t.Fatalf("close left negative figures: %+v", r)
			}
			if !r.After.AvgPrice.Equal(avg) {
				t.Fatalf("close moved the average open price from %s to %s", avg, r.After.AvgPrice)
			}
			if !r.NetPnL.Equal(r.GrossPnL.Sub(r.Fee)) {
				t.Fatalf("net %s != gross %s - fee %s", r.NetPnL, r.GrossPnL, r.Fee)
			}
			realized = realized.Add(r.GrossPnL)
			closeValue = closeValue.Add(size.Mul(exits[i]))
			pos = r.After
		}
		if !pos.Size.IsZero() || !pos.Margin.IsZero() {
			t.Fatalf("after the full close: size %s margin %s, want zero", pos.Size, pos.Margin)
		}
		sign := decimal.NewFromInt(1)
		if short {
			sign = sign.Neg()
		}
		independent := closeValue.Sub(openValue).Mul(inst.CtVal).Mul(sign)
		tolerance := d("0.00000001").Add(totalSize.Mul(inst.CtVal).Mul(d("1.5e-16")))
		if diff := realized.Sub(independent).Abs(); diff.GreaterThan(tolerance) {
			t.Fatalf("realized %s, independently %s: off by %s > %s", realized, independent, diff, tolerance)
		}
	})
}

// FuzzTraderEventValidate decodes arbitrary JSON into a TraderEvent, as a
// signal payload from upstream would be, and checks that Validate never
// panics, that a refusal names a field and a reason, and that an accepted
// event has what its kind needs.
func FuzzTraderEventValidate(f *testing.F) {
	seeds := []string{
		`{"event_id":"e1","trader_id":"t1","kind":"open","inst_id":"BTC-USDT-SWAP","side":"long","margin_mode":"cross","leverage":"5","margin":"1000","equity":"10000","price":"60000","size":"0.83"}`,
		`{"event_id":"e2","trader_id":"t1","kind":"close","inst_id":"BTC-USDT-SWAP","side":"short","price":"61000","size":"0.5","size_before":"1"}`,
		`{"event_id":"e3","trader_id":"t1","kind":"leverage","inst_id":"ETH-USDT-SWAP","side":"long","leverage":3}`,
		`{"event_id":"e4","trader_id":"t1","kind":"margin","inst_id":"ETH-USDT-SWAP","side":"long","margin_delta":"-1e3","margin_before":"2000"}`,
		`{"event_id":"","kind":"open","size":"NaN"}`,
		`{"event_id":"e/1","trader_id":"t 1","kind":"close","size":"1e400","price":"-0"}`,
		`{"event_id":"e5","trader_id":"t1","kind":"open","inst_id":"X","side":"long","margin_mode":"isolated","size":"1e-9999","at":"2024-02-26T00:00:00Z"}`,
		`{}`, `null`, `[]`, `{"size":null}`,
		`{"event_id":"e6","trader_id":"t1","kind":"leverage","inst_id":"BTC-USDT-SWAP","side":"long","leverage":"1e16"}`,
		`{"event_id":"e7","trader_id":"t1","kind":"margin","inst_id":"BTC-USDT-SWAP","side":"short","margin_delta":-1e400}`,
		`{"event_id":"e8","trader_id":"t1","kind":"open","inst_id":"BTC-USDT-SWAP","side":"long","margin_mode":"cross","size":"1","equity":"Infinity"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e copytrade.TraderEvent
		if err := json.Unmarshal(data, &e); err != nil {
			return
		}
		err := e.Validate()
		if err != nil {
			if err.Field == "" || err.Reason == "" || err.Error() == "" {
				t.Fatalf("refusal without field or reason: %+v", err)
			}
			return
		}
		if copytrade.ValidateID("event_id", e.EventID) != nil || copytrade.ValidateID("trader_id", e.TraderID) != nil ||
			e.InstID == "" || !e.Side.Valid() {
			t.Fatalf("accepted an event without valid ids or side: %+v", e)
		}
		for _, v := range []decimal.Decimal{e.Leverage, e.Margin, e.Equity, e.Price, e.Size, e.SizeBefore, e.MarginDelta, e.MarginBefore} {
			if v.Abs().GreaterThan(copytrade.MaxAmount) {
				t.Fatalf("accepted an event with a figure above MaxAmount: %s", v)
			}
		}
		switch e.Kind {
		case copytrade.EventOpen:
			if !e.MarginMode.Valid() || !e.Size.IsPositive() {
				t.Fatalf("accepted an open without margin mode or size: %+v", e)
			}
		case copytrade.EventClose:
			if !e.Size.IsPositive() || !e.Price.IsPositive() {
				t.Fatalf("accepted a close without size or price: %+v", e)
			}
		case copytrade.EventLeverage:
			if !e.Leverage.IsPositive() {
				t.Fatalf("accepted a leverage change to %s", e.Leverage)
			}
		case copytrade.EventMargin:
			if e.MarginDelta.IsZero() {
				t.Fatalf("accepted a zero margin change")
			}
		default:
			t.Fatalf("accepted kind %q", e.Kind)
		}
		// An accepted event survives the JSON round trip workflow state
		// and activity inputs take.
		out, merr := json.Marshal(e)
		if merr != nil {
			t.Fatalf("marshal accepted event: %v", merr)
		}
		var back copytrade.TraderEvent
		if uerr := json.Unmarshal(out, &back); uerr != nil {
			t.Fatalf("re-read %s: %v", out, uerr)
		}
		if verr := back.Validate(); verr != nil {
			t.Fatalf("event valid before the round trip is not after: %v (%s)", verr, out)
		}
	})
}
