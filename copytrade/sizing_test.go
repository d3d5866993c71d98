package copytrade_test

import (
	"testing"

	"smartcopy/copytrade"
)

// TestPlanOpen_R6_R7 works R6 (fund usage ratio) and R7 (floor to the lot,
// raise to the minimum size) through with the figures a follower would
// compute by hand.
func TestPlanOpen_R6_R7(t *testing.T) {
	tests := []struct {
		name string
		inst copytrade.Instrument
		in   copytrade.OpenInputs
		// want
		ratio, target, size, notional, margin, fee string
		minSize                                    bool
	}{
		{
			// The seed's example: 1,000 of 10,000 equity is 10%; 10% of a
			// 1,000 investment is 100 margin at 5x = 500 notional =
			// 0.8333 contracts at 600 USDT each, floored to 0.83.
			name: "R6 seed example, R7 floor to lot",
			inst: btc,
			in: copytrade.OpenInputs{TraderMargin: d("1000"), TraderEquity: d("10000"), Leverage: d("5"),
				MarginMode: copytrade.Cross, Investment: d("1000"), Price: d("60000")},
			ratio: "0.1", target: "100", size: "0.83", notional: "498", margin: "99.6", fee: "0.249",
		},
		{
			// 1% of 100 is 1 USDT margin: 5 USDT notional is 0.0083
			// contracts, below the 0.01 minimum, so 0.01 opens and takes
			// 1.2 margin, more than R6 gives.
			name: "R7 below minimum size opens the minimum",
			inst: btc,
			in: copytrade.OpenInputs{TraderMargin: d("100"), TraderEquity: d("10000"), Leverage: d("5"),
				MarginMode: copytrade.Cross, Investment: d("100"), Price: d("60000")},
			ratio: "0.01", target: "1", size: "0.01", notional: "6", margin: "1.2", fee: "0.003", minSize: true,
		},
		{
			// 25% of 500 = 125 at 10x = 1250 notional; an ETH contract at
			// 3000 is 300 USDT: 4.1666 floored to 4.16.
			name: "R7 floor on ETH",
			inst: eth,
			in: copytrade.OpenInputs{TraderMargin: d("250"), TraderEquity: d("1000"), Leverage: d("10"),
				MarginMode: copytrade.Isolated, Investment: d("500"), Price: d("3000")},
			ratio: "0.25", target: "125", size: "4.16", notional: "1248", margin: "124.8", fee: "0.624",
		},
		{
			// A ratio that does not terminate: 1/3 kept to 16 places, the
			// target margin rounded to 8 places gives back 100.
			name: "R6 repeating ratio",
			inst: btc,
			in: copytrade.OpenInputs{TraderMargin: d("1"), TraderEquity: d("3"), Leverage: d("10"),
				MarginMode: copytrade.Cross, Investment: d("300"), Price: d("60000")},
			ratio: "0.3333333333333333", target: "100", size: "1.66", notional: "996", margin: "99.6", fee: "0.498",
		},
		{
			// 3.33% of 2,000 = 66.6 at 3x = 199.8 notional over 612.345
			// per contract = 0.3262 -> 0.32; 0.32 x 612.345 = 195.9504.
			name: "R7 odd price and leverage",
			inst: btc,
			in: copytrade.OpenInputs{TraderMargin: d("333"), TraderEquity: d("10000"), Leverage: d("3"),
				MarginMode: copytrade.Isolated, Investment: d("2000"), Price: d("61234.5")},
			ratio: "0.0333", target: "66.6", size: "0.32", notional: "195.9504", margin: "65.3168", fee: "0.0979752",
		},
		{
			// Regression (FuzzSizingAndClose): 2.00000003 target at 2.5x
			// buys 5.000000075 notional, exactly 2 contracts at
			// 2.5000000375, but that notional rounds to 5.00000008 and
			// its margin to 2.00000004, above the target. R7 never spends
			// more than the target, so one contract opens.
			name: "R7 fractional leverage stays within the target",
			inst: copytrade.Instrument{ID: "X-USDT-SWAP", CtVal: d("0.01"), LotSize: d("1"), MinSize: d("1"),
				TickSize: d("0.00000001"), MaxLeverage: d("50"), TakerFeeRate: d("0.0005")},
			in: copytrade.OpenInputs{TraderMargin: d("2.00000003"), TraderEquity: d("1"), Leverage: d("2.5"),
				MarginMode: copytrade.Isolated, Investment: d("1"), Price: d("250.00000375")},
			ratio: "2.00000003", target: "2.00000003", size: "1", notional: "2.50000004", margin: "1.00000002", fee: "0.00125001",
		},
		{
			// Leverage at the maximum is allowed (R11 refuses only above).
			name: "R11 leverage at the maximum",
			inst: btc,
			in: copytrade.OpenInputs{TraderMargin: d("10"), TraderEquity: d("1000"), Leverage: d("100"),
				MarginMode: copytrade.Cross, Investment: d("1000"), Price: d("50000")},
			ratio: "0.01", target: "10", size: "2", notional: "1000", margin: "10", fee: "0.5",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, rej := copytrade.PlanOpen(tc.inst, tc.in)
			if rej != nil {
				t.Fatalf("PlanOpen rejected: %v", rej)
			}
			eq(t, "ratio", p.Ratio, d(tc.ratio))
			eq(t, "target margin", p.TargetMargin, d(tc.target))
			eq(t, "size", p.Size, d(tc.size))
			eq(t, "notional", p.Notional, d(tc.notional))
			eq(t, "margin", p.Margin, d(tc.margin))
			eq(t, "fee", p.Fee, d(tc.fee))
			eq(t, "required", p.Required(), d(tc.margin).Add(d(tc.fee)))
			if p.MinSizeApplied != tc.minSize {
				t.Errorf("MinSizeApplied = %v, want %v", p.MinSizeApplied, tc.minSize)
			}
		})
	}
}

// TestPlanOpenRejections_R11: each bad input is refused with its own
// reason, and nothing is sized.
func TestPlanOpenRejections_R11(t *testing.T) {
	good := copytrade.OpenInputs{TraderMargin: d("1000"), TraderEquity: d("10000"), Leverage: d("5"),
		MarginMode: copytrade.Cross, Investment: d("1000"), Price: d("60000")}
	tests := []struct {
		name   string
		change func(*copytrade.OpenInputs)
		reason string
	}{
		{"zero trader margin", func(in *copytrade.OpenInputs) { in.TraderMargin = d("0") }, copytrade.ReasonInvalidMargin},
		{"negative trader margin", func(in *copytrade.OpenInputs) { in.TraderMargin = d("-1") }, copytrade.ReasonInvalidMargin},
		{"zero equity", func(in *copytrade.OpenInputs) { in.TraderEquity = d("0") }, copytrade.ReasonInvalidEquity},
		{"negative equity", func(in *copytrade.OpenInputs) { in.TraderEquity = d("-10000") }, copytrade.ReasonInvalidEquity},
		{"zero price", func(in *copytrade.OpenInputs) { in.Price = d("0") }, copytrade.ReasonInvalidPrice},
		{"negative price", func(in *copytrade.OpenInputs) { in.Price = d("-60000") }, copytrade.ReasonInvalidPrice},
		{"zero leverage", func(in *copytrade.OpenInputs) { in.Leverage = d("0") }, copytrade.ReasonInvalidLeverage},
		{"negative leverage", func(in *copytrade.OpenInputs) { in.Leverage = d("-5") }, copytrade.ReasonInvalidLeverage},
		{"leverage above max", func(in *copytrade.OpenInputs) { in.Leverage = d("100.01") }, copytrade.ReasonLeverageAboveMax},
		{"no margin mode", func(in *copytrade.OpenInputs) { in.MarginMode = "" }, copytrade.ReasonInvalidMarginMode},
		{"unknown margin mode", func(in *copytrade.OpenInputs) { in.MarginMode = "portfolio" }, copytrade.ReasonInvalidMarginMode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := good
			tc.change(&in)
			p, rej := copytrade.PlanOpen(btc, in)
			if rej == nil {
				t.Fatalf("PlanOpen accepted %+v as %+v", in, p)
			}
			if rej.Reason != tc.reason {
				t.Errorf("reason = %q, want %q (%s)", rej.Reason, tc.reason, rej.Detail)
			}
			if rej.Detail == "" {
				t.Error("rejection has no detail sentence")
			}
			if !p.Size.IsZero() || !p.Margin.IsZero() {
				t.Errorf("rejected plan still sized: %+v", p)
			}
			if r := copytrade.CheckOpen(btc, in); r == nil || r.Reason != tc.reason {
				t.Errorf("CheckOpen = %v, want reason %q", r, tc.reason)
			}
		})
	}
	if r := copytrade.CheckOpen(btc, good); r != nil {
		t.Errorf("CheckOpen refused the seed example: %v", r)
	}
}

// TestSpreadProtection_R10: 0.5% worse than the trader's fill is still
// accepted; anything beyond it is not. Better prices are always accepted.
func TestSpreadProtection_R10(t *testing.T) {
	tol := copytrade.DefaultRules().SpreadTolerance
	eq(t, "worst long", copytrade.WorstOpenPrice(copytrade.Long, d("60000"), tol), d("60300"))
	eq(t, "worst short", copytrade.WorstOpenPrice(copytrade.Short, d("60000"), tol), d("59700"))
	tests := []struct {
		side     copytrade.Side
		price    string
		exceeded bool
	}{
		{copytrade.Long, "60000", false},
		{copytrade.Long, "59000", false},   // better for a long
		{copytrade.Long, "60300", false},   // exactly 0.5%: inclusive
		{copytrade.Long, "60300.01", true}, // just beyond
		{copytrade.Long, "60300.0000001", true},
		{copytrade.Short, "60000", false},
		{copytrade.Short, "61000", false}, // better for a short
		{copytrade.Short, "59700", false}, // exactly 0.5%
		{copytrade.Short, "59699.99", true},
	}
	for _, tc := range tests {
		if got := copytrade.SpreadExceeded(tc.side, d("60000"), d(tc.price), tol); got != tc.exceeded {
			t.Errorf("%s at %s vs trader 60000: exceeded = %v, want %v", tc.side, tc.price, got, tc.exceeded)
		}
	}
}

// TestRoundingHelpers pins the rounding each rule relies on.
func TestRoundingHelpers(t *testing.T) {
	eq(t, "FloorToLot(0.8399, 0.01)", copytrade.FloorToLot(d("0.8399"), d("0.01")), d("0.83"))
	eq(t, "FloorToLot(5, 1)", copytrade.FloorToLot(d("5"), d("1")), d("5"))
	eq(t, "NearestLot(0.415, 0.01)", copytrade.NearestLot(d("0.415"), d("0.01")), d("0.42"))
	eq(t, "NearestLot(0.4149, 0.01)", copytrade.NearestLot(d("0.4149"), d("0.01")), d("0.41"))
	eq(t, "RoundMoney(0.000000005)", copytrade.RoundMoney(d("0.000000005")), d("0")) // half to even
	eq(t, "RoundMoney(0.000000015)", copytrade.RoundMoney(d("0.000000015")), d("0.00000002"))
	eq(t, "RoundFeeUp(0.000000001)", copytrade.RoundFeeUp(d("0.000000001")), d("0.00000001"))
	eq(t, "InitialMargin(498, 7)", copytrade.InitialMargin(d("498"), d("7")), d("71.14285715"))
	if !copytrade.IsLotMultiple(d("0.83"), d("0.01")) || copytrade.IsLotMultiple(d("0.835"), d("0.01")) {
		t.Error("IsLotMultiple misjudges 0.83 / 0.835 against lot 0.01")
	}
}
