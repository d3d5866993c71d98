package copytrade_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// TestFundFigures_R17_R20: equity = investment + realized - fees; used =
// sum of margins; available = equity - used; net = realized - fees +
// unrealized at mark.
func TestFundFigures_R17_R20(t *testing.T) {
	f := copytrade.Fund{Investment: d("1000"), RealizedPnL: d("4.2"), Fees: d("0.3771")}
	positions := []copytrade.Position{
		{InstID: btc.ID, Side: copytrade.Long, Size: d("0.41"), AvgPrice: d("60000"), Margin: d("49.2")},
		{InstID: eth.ID, Side: copytrade.Short, Size: d("1"), AvgPrice: d("3000"), Margin: d("30")},
		// No instrument figures for it: its margin counts, its PnL cannot.
		{InstID: "SOL-USDT-SWAP", Side: copytrade.Long, Size: d("1"), AvgPrice: d("150"), Margin: d("15")},
	}
	instruments := map[string]copytrade.Instrument{btc.ID: btc, eth.ID: eth}
	marks := map[string]decimal.Decimal{btc.ID: d("59000"), eth.ID: d("3100"), "SOL-USDT-SWAP": d("1000")}
	fig := copytrade.FundFigures(f, positions, instruments, marks)
	eq(t, "investment", fig.Investment, d("1000"))
	eq(t, "realized", fig.RealizedPnL, d("4.2"))
	eq(t, "fees", fig.Fees, d("0.3771"))
	eq(t, "equity", fig.Equity, d("1003.8229"))
	eq(t, "used", fig.Used, d("94.2"))
	eq(t, "available", fig.Available, d("909.6229"))
	// BTC: -1000 x 0.41 x 0.01 = -4.1; ETH short: -(100 x 1 x 0.1) = -10.
	eq(t, "unrealized", fig.UnrealizedPnL, d("-14.1"))
	eq(t, "net", fig.NetPnL, d("-10.2771"))

	// A mark not yet known counts no unrealized PnL.
	fig = copytrade.FundFigures(f, positions[:1], instruments, nil)
	eq(t, "unrealized without marks", fig.UnrealizedPnL, d("0"))
	eq(t, "available", fig.Available, d("954.6229"))

	// An empty fund is all available.
	fig = copytrade.FundFigures(copytrade.Fund{Investment: d("100")}, nil, nil, nil)
	eq(t, "empty available", fig.Available, d("100"))
	eq(t, "empty net", fig.NetPnL, d("0"))
}

// TestStopLossBreached_R20: net PnL at or below -stop loss stops the
// relationship; a zero stop loss is none.
func TestStopLossBreached_R20(t *testing.T) {
	tests := []struct {
		net, stop string
		want      bool
	}{
		{"-100", "100", true}, // equal: breached
		{"-100.00000001", "100", true},
		{"-99.99999999", "100", false},
		{"-150", "100", true},
		{"0", "100", false},
		{"50", "100", false},
		{"-1000000", "0", false}, // no stop loss set
		{"0", "0", false},
		{"-0.00000001", "0.00000001", true},
	}
	for _, tc := range tests {
		if got := copytrade.StopLossBreached(d(tc.net), d(tc.stop)); got != tc.want {
			t.Errorf("StopLossBreached(net %s, stop %s) = %v, want %v", tc.net, tc.stop, got, tc.want)
		}
	}
}
