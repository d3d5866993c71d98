package copytrade

import "github.com/shopspring/decimal"

// Merge adds a fill of size at price to a position on the same (instrument,
// side) (R8): sizes and margins add, the average open price becomes the
// size-weighted average. Leverage and margin mode become the new fill's,
// which are the trader's.
func Merge(p Position, size, price, margin, leverage decimal.Decimal, mode MarginMode) Position {
	total := p.Size.Add(size)
	if p.Size.IsZero() {
		p.AvgPrice = price
	} else {
		p.AvgPrice = p.Size.Mul(p.AvgPrice).Add(size.Mul(price)).DivRound(total, RatioScale)
	}
	p.Size = total
	p.Margin = p.Margin.Add(margin)
	p.Leverage = leverage
	p.MarginMode = mode
	return p
}

// CloseSize is how many contracts a follower closes when the trader closes
// traderClosed out of traderBefore on the same (instrument, side) (R12): the
// same fraction of the follower's size, rounded to the lot size, never more
// than the follower holds. A full close by the trader closes the follower
// fully. A follower holding nothing closes nothing (R13).
func CloseSize(followerSize, traderClosed, traderBefore, lot decimal.Decimal) decimal.Decimal {
	if !followerSize.IsPositive() || !traderClosed.IsPositive() {
		return decimal.Zero
	}
	if !traderBefore.IsPositive() || traderClosed.GreaterThanOrEqual(traderBefore) {
		return followerSize
	}
	fraction := traderClosed.DivRound(traderBefore, RatioScale)
	size := NearestLot(followerSize.Mul(fraction), lot)
	if size.GreaterThan(followerSize) {
		return followerSize
	}
	return size
}

// CloseResult is the arithmetic of closing size contracts of a position at
// exit price.
type CloseResult struct {
	Size decimal.Decimal `json:"size"`
	Exit decimal.Decimal `json:"exit"`
	// GrossPnL is (exit - average open) x size x ctVal, sign-flipped for
	// shorts; NetPnL is GrossPnL minus the fee (R14).
	GrossPnL decimal.Decimal `json:"gross_pnl"`
	Fee      decimal.Decimal `json:"fee"`
	NetPnL   decimal.Decimal `json:"net_pnl"`
	// MarginReleased is the closed share of the position's margin.
	MarginReleased decimal.Decimal `json:"margin_released"`
	// After is the position once closed; its average open price is
	// unchanged (R12).
	After Position `json:"after"`
}

// Close closes size contracts of p at exit. size must be positive and at
// most p.Size.
func Close(inst Instrument, p Position, size, exit decimal.Decimal) CloseResult {
	r := CloseResult{Size: size, Exit: exit}
	r.GrossPnL = GrossPnL(inst, p.Side, p.AvgPrice, exit, size)
	r.Fee = Fee(Notional(inst, size, exit), inst.TakerFeeRate)
	r.NetPnL = r.GrossPnL.Sub(r.Fee)
	after := p
	after.Size = p.Size.Sub(size)
	if after.Size.IsZero() {
		r.MarginReleased = p.Margin
	} else {
		r.MarginReleased = RoundMoney(p.Margin.Mul(size).DivRound(p.Size, RatioScale))
	}
	after.Margin = p.Margin.Sub(r.MarginReleased)
	r.After = after
	return r
}

// GrossPnL is (exit - entry) x size x ctVal, sign-flipped for shorts.
func GrossPnL(inst Instrument, side Side, entry, exit, size decimal.Decimal) decimal.Decimal {
	return RoundMoney(exit.Sub(entry).Mul(size).Mul(inst.CtVal).Mul(side.sign()))
}

// UnrealizedPnL is the PnL of the whole position at mark, before fees.
func UnrealizedPnL(inst Instrument, p Position, mark decimal.Decimal) decimal.Decimal {
	if p.Size.IsZero() || !mark.IsPositive() {
		return decimal.Zero
	}
	return GrossPnL(inst, p.Side, p.AvgPrice, mark, p.Size)
}

// LeverageMargin is the margin a position needs at a new leverage: its
// notional at the average open price divided by the leverage (R15).
func LeverageMargin(inst Instrument, p Position, leverage decimal.Decimal) decimal.Decimal {
	return InitialMargin(Notional(inst, p.Size, p.AvgPrice), leverage)
}

// ProportionalMarginDelta is the follower's margin change when the trader
// changes an isolated position's margin by traderDelta (R16): traderDelta x
// follower margin / trader margin before.
func ProportionalMarginDelta(traderDelta, followerMargin, traderMarginBefore decimal.Decimal) decimal.Decimal {
	if !traderMarginBefore.IsPositive() {
		return decimal.Zero
	}
	return RoundMoney(traderDelta.Mul(followerMargin).DivRound(traderMarginBefore, RatioScale))
}
