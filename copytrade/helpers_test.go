package copytrade_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// d reads a decimal literal; tests state every figure as text so that the
// expected value is exactly what a reader of SPEC.md would write down.
func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// OKX's figures for its USDT-margined swaps, as schema/0002_venue.sql lists
// them.
var (
	btc = copytrade.Instrument{
		ID: "BTC-USDT-SWAP", CtVal: d("0.01"), LotSize: d("0.01"), MinSize: d("0.01"), TickSize: d("0.1"),
		MaxLeverage: d("100"), TakerFeeRate: d("0.0005"), MaintMarginRate: d("0.004"),
	}
	eth = copytrade.Instrument{
		ID: "ETH-USDT-SWAP", CtVal: d("0.1"), LotSize: d("0.01"), MinSize: d("0.01"), TickSize: d("0.01"),
		MaxLeverage: d("100"), TakerFeeRate: d("0.0005"), MaintMarginRate: d("0.004"),
	}
)

// eq fails the test when got is not exactly want (not merely close).
func eq(t *testing.T, what string, got, want decimal.Decimal) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}
