package copytrade_test

import (
	"testing"

	"smartcopy/copytrade"
)

// TestMerge_R8: opens on the same (instrument, side) add up into one
// position at the size-weighted average open price.
func TestMerge_R8(t *testing.T) {
	empty := copytrade.Position{InstID: btc.ID, Side: copytrade.Long}
	tests := []struct {
		name   string
		fills  [][3]string // size, price, margin
		size   string
		avg    string
		margin string
	}{
		{"first fill sets the average", [][3]string{{"0.83", "60000", "99.6"}}, "0.83", "60000", "99.6"},
		{"1 at 60000 and 3 at 62000", [][3]string{{"1", "60000", "120"}, {"3", "62000", "372"}}, "4", "61500", "492"},
		// (0.83 x 60000 + 0.17 x 65000) / 1 = 60850
		{"seed fill then a small one", [][3]string{{"0.83", "60000", "99.6"}, {"0.17", "65000", "22.1"}}, "1", "60850", "121.7"},
		// 5/3 is kept to RatioScale (16) places
		{"repeating average", [][3]string{{"1", "1", "0.2"}, {"2", "2", "0.8"}}, "3", "1.6666666666666667", "1"},
		{"three fills", [][3]string{{"0.5", "60000", "6"}, {"0.25", "64000", "3.2"}, {"0.25", "56000", "2.8"}}, "1", "60000", "12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := empty
			for _, f := range tc.fills {
				p = copytrade.Merge(p, d(f[0]), d(f[1]), d(f[2]), d("5"), copytrade.Cross)
			}
			eq(t, "size", p.Size, d(tc.size))
			eq(t, "avg price", p.AvgPrice, d(tc.avg))
			eq(t, "margin", p.Margin, d(tc.margin))
			if p.InstID != btc.ID || p.Side != copytrade.Long || !p.Leverage.Equal(d("5")) || p.MarginMode != copytrade.Cross {
				t.Errorf("merge lost the key or risk parameters: %+v", p)
			}
		})
	}
	// Leverage and margin mode become the latest fill's, which are the
	// trader's.
	p := copytrade.Merge(empty, d("1"), d("60000"), d("120"), d("5"), copytrade.Cross)
	p = copytrade.Merge(p, d("1"), d("60000"), d("60"), d("10"), copytrade.Isolated)
	if !p.Leverage.Equal(d("10")) || p.MarginMode != copytrade.Isolated {
		t.Errorf("merge kept old risk parameters: %+v", p)
	}
}

// TestCloseSize_R12_R13: the follower closes the trader's fraction of its
// own size, rounded to the lot; all of it on a full close; nothing when it
// holds nothing.
func TestCloseSize_R12_R13(t *testing.T) {
	tests := []struct {
		name                          string
		follower, closed, before, lot string
		want                          string
	}{
		{"R12 half of 0.83 rounds half up to 0.42", "0.83", "1", "2", "0.01", "0.42"},
		{"R12 a third of 1", "1", "1", "3", "0.01", "0.33"},
		{"R12 two thirds of 1", "1", "2", "3", "0.01", "0.67"},
		{"R12 a quarter of 4.16", "4.16", "0.5", "2", "0.01", "1.04"},
		{"R12 full close closes everything", "0.83", "2", "2", "0.01", "0.83"},
		{"R12 closing more than the trader held closes everything", "0.83", "3", "2", "0.01", "0.83"},
		{"R12 unknown size before closes everything", "0.83", "1", "0", "0.01", "0.83"},
		{"R12 fraction below half a lot closes nothing", "0.01", "1", "10", "0.01", "0"},
		{"R12 whole-contract lot", "7", "1", "2", "1", "4"},
		{"R13 nothing held closes nothing", "0", "1", "2", "0.01", "0"},
		{"R13 nothing closed by the trader", "0.83", "0", "2", "0.01", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := copytrade.CloseSize(d(tc.follower), d(tc.closed), d(tc.before), d(tc.lot))
			eq(t, "close size", got, d(tc.want))
		})
	}
}

// TestClose_R12_R14: realized PnL = (exit - avg) x size x ctVal, flipped
// for shorts, minus the taker fee; the closed share of margin is released
// and the average open price does not move.
func TestClose_R12_R14(t *testing.T) {
	seedLong := copytrade.Position{InstID: btc.ID, Side: copytrade.Long, Size: d("0.83"), AvgPrice: d("60000"),
		Leverage: d("5"), MarginMode: copytrade.Cross, Margin: d("99.6")}
	ethShort := copytrade.Position{InstID: eth.ID, Side: copytrade.Short, Size: d("2"), AvgPrice: d("3000"),
		Leverage: d("10"), MarginMode: copytrade.Isolated, Margin: d("60")}
	tests := []struct {
		name                                              string
		inst                                              copytrade.Instrument
		pos                                               copytrade.Position
		size, exit                                        string
		gross, fee, net, released, sizeAfter, marginAfter string
	}{
		// 1000 x 0.42 x 0.01 = 4.2; fee 0.42 x 610 x 0.0005 = 0.1281;
		// released 99.6 x 0.42 / 0.83 = 50.4.
		{"long partial, profit", btc, seedLong, "0.42", "61000", "4.2", "0.1281", "4.0719", "50.4", "0.41", "49.2"},
		// -500 x 0.83 x 0.01 = -4.15; fee 0.83 x 595 x 0.0005 = 0.246925.
		{"long full, loss", btc, seedLong, "0.83", "59500", "-4.15", "0.246925", "-4.396925", "99.6", "0", "0"},
		// short loses when the price rises: -(100 x 2 x 0.1) = -20;
		// fee 620 x 0.0005 = 0.31.
		{"short full, loss", eth, ethShort, "2", "3100", "-20", "0.31", "-20.31", "60", "0", "0"},
		// short gains when the price falls: 100 x 1 x 0.1 = 10; fee
		// 290 x 0.0005 = 0.145.
		{"short partial, profit", eth, ethShort, "1", "2900", "10", "0.145", "9.855", "30", "1", "30"},
		// released 60 x 0.67 / 2 = 20.1; fee 0.67 x 300 x 0.0005 = 0.1005
		{"short odd share of margin", eth, ethShort, "0.67", "3000", "0", "0.1005", "-0.1005", "20.1", "1.33", "39.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := copytrade.Close(tc.inst, tc.pos, d(tc.size), d(tc.exit))
			eq(t, "gross", r.GrossPnL, d(tc.gross))
			eq(t, "fee", r.Fee, d(tc.fee))
			eq(t, "net", r.NetPnL, d(tc.net))
			eq(t, "released", r.MarginReleased, d(tc.released))
			eq(t, "size after", r.After.Size, d(tc.sizeAfter))
			eq(t, "margin after", r.After.Margin, d(tc.marginAfter))
			eq(t, "avg after (R12: unchanged)", r.After.AvgPrice, tc.pos.AvgPrice)
			eq(t, "GrossPnL", copytrade.GrossPnL(tc.inst, tc.pos.Side, tc.pos.AvgPrice, d(tc.exit), d(tc.size)), d(tc.gross))
		})
	}
}

// TestUnrealizedPnL_R20 is the PnL of the whole position at mark.
func TestUnrealizedPnL_R20(t *testing.T) {
	p := copytrade.Position{InstID: btc.ID, Side: copytrade.Long, Size: d("0.83"), AvgPrice: d("60000"), Margin: d("99.6")}
	eq(t, "long at 58000", copytrade.UnrealizedPnL(btc, p, d("58000")), d("-16.6"))
	p.Side = copytrade.Short
	eq(t, "short at 58000", copytrade.UnrealizedPnL(btc, p, d("58000")), d("16.6"))
	eq(t, "no mark", copytrade.UnrealizedPnL(btc, p, d("0")), d("0"))
	p.Size = d("0")
	eq(t, "empty position", copytrade.UnrealizedPnL(btc, p, d("58000")), d("0"))
}

// TestLeverageMargin_R15: the margin a position needs at a new leverage is
// its notional at the average open price over the leverage, rounded up.
func TestLeverageMargin_R15(t *testing.T) {
	p := copytrade.Position{InstID: btc.ID, Side: copytrade.Long, Size: d("0.83"), AvgPrice: d("60000"),
		Leverage: d("5"), MarginMode: copytrade.Isolated, Margin: d("99.6")}
	tests := []struct{ lev, want string }{
		{"5", "99.6"},        // unchanged
		{"3", "166"},         // lower leverage takes 66.4 more
		{"10", "49.8"},       // higher releases 49.8
		{"7", "71.14285715"}, // 498 / 7 = 71.142857142857..., rounded up
		{"2.5", "199.2"},
	}
	for _, tc := range tests {
		eq(t, "margin at "+tc.lev+"x", copytrade.LeverageMargin(btc, p, d(tc.lev)), d(tc.want))
	}
}

// TestProportionalMarginDelta_R16: follower delta = trader delta x
// follower margin / trader margin before.
func TestProportionalMarginDelta_R16(t *testing.T) {
	tests := []struct{ traderDelta, follower, traderBefore, want string }{
		{"50", "20", "200", "5"},
		{"-30", "10", "90", "-3.33333333"}, // rounded to MoneyScale, half to even
		{"100", "99.6", "1000", "9.96"},    // the seed's position, trader adds 10%
		{"20", "0.01", "3", "0.06666667"},
		{"50", "20", "0", "0"}, // unknown trader margin: do nothing rather than divide by zero
	}
	for _, tc := range tests {
		got := copytrade.ProportionalMarginDelta(d(tc.traderDelta), d(tc.follower), d(tc.traderBefore))
		eq(t, "delta for "+tc.traderDelta+" x "+tc.follower+" / "+tc.traderBefore, got, d(tc.want))
	}
}
