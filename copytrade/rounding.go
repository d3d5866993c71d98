package copytrade

import "github.com/shopspring/decimal"

// MoneyScale is the number of decimal places kept for USDT amounts (margin,
// fees, PnL). USDT settles to 6 places on most chains; 8 leaves room for fee
// arithmetic without hiding cents.
const MoneyScale = 8

// RatioScale is the number of decimal places kept for ratios (fund usage,
// close fraction) and average prices before they are used in products.
const RatioScale = 16

// RoundMoney rounds a USDT amount to MoneyScale places, half to even, so
// that rounding errors over many trades do not drift in one direction.
func RoundMoney(d decimal.Decimal) decimal.Decimal { return d.RoundBank(MoneyScale) }

// RoundFeeUp rounds a fee up to MoneyScale places: a venue never charges
// less than its rate.
func RoundFeeUp(d decimal.Decimal) decimal.Decimal { return d.RoundCeil(MoneyScale) }

// FloorToLot rounds a size in contracts down to a whole number of lots (R7:
// an open never uses more margin than the ratio gives, but for the minimum
// size).
func FloorToLot(size, lot decimal.Decimal) decimal.Decimal {
	if !lot.IsPositive() {
		return size
	}
	return size.Div(lot).Floor().Mul(lot)
}

// NearestLot rounds a size in contracts to the nearest whole number of lots,
// half up (R12: a proportional close is "rounded to the lot size").
func NearestLot(size, lot decimal.Decimal) decimal.Decimal {
	if !lot.IsPositive() {
		return size
	}
	return size.DivRound(lot, RatioScale).Round(0).Mul(lot)
}

// IsLotMultiple reports whether size is a whole number of lots.
func IsLotMultiple(size, lot decimal.Decimal) bool {
	if !lot.IsPositive() {
		return true
	}
	return size.Mod(lot).IsZero()
}
