package copytrade

import "github.com/shopspring/decimal"

// OpenInputs are what sizing a copied open depends on (R6, R7).
type OpenInputs struct {
	// TraderMargin and TraderEquity are the trader's order margin and
	// account equity as of the trader's order.
	TraderMargin decimal.Decimal `json:"trader_margin"`
	TraderEquity decimal.Decimal `json:"trader_equity"`
	// Leverage and MarginMode are the trader's.
	Leverage   decimal.Decimal `json:"leverage"`
	MarginMode MarginMode      `json:"margin_mode"`
	// Investment is the relationship's current investment amount.
	Investment decimal.Decimal `json:"investment"`
	// Price is the price the follower's order is expected to fill at.
	Price decimal.Decimal `json:"price"`
}

// OpenPlan is a sized open: the figures a follower sees when asking "why is
// my margin different from the trader's".
type OpenPlan struct {
	Ratio decimal.Decimal `json:"ratio"`
	// TargetMargin is investment x ratio (R6), before rounding to lots.
	TargetMargin decimal.Decimal `json:"target_margin"`
	Size         decimal.Decimal `json:"size"`
	// Margin is the initial margin of Size at Price and Leverage; it is
	// at most TargetMargin unless MinSizeApplied.
	Margin   decimal.Decimal `json:"margin"`
	Notional decimal.Decimal `json:"notional"`
	Fee      decimal.Decimal `json:"fee"`
	// MinSizeApplied says the ratio gave less than the instrument's
	// minimum size and the minimum was opened instead (R7).
	MinSizeApplied bool `json:"min_size_applied"`
}

// Required is what the open takes from the copy fund's available amount:
// margin plus fee (R9).
func (p OpenPlan) Required() decimal.Decimal { return p.Margin.Add(p.Fee) }

// CheckOpen applies R11 to the inputs of an open: leverage within the
// instrument's maximum, positive margin, equity and price.
func CheckOpen(inst Instrument, in OpenInputs) *Rejection {
	switch {
	case !in.TraderMargin.IsPositive():
		return reject(ReasonInvalidMargin, "trader margin %s is not positive", in.TraderMargin)
	case !in.TraderEquity.IsPositive():
		return reject(ReasonInvalidEquity, "trader equity %s is not positive", in.TraderEquity)
	case !in.Price.IsPositive():
		return reject(ReasonInvalidPrice, "price %s is not positive", in.Price)
	case !in.Leverage.IsPositive():
		return reject(ReasonInvalidLeverage, "leverage %s is not positive", in.Leverage)
	case in.Leverage.GreaterThan(inst.MaxLeverage):
		return reject(ReasonLeverageAboveMax, "leverage %sx is above %s's maximum %sx", in.Leverage, inst.ID, inst.MaxLeverage)
	case !in.MarginMode.Valid():
		return reject(ReasonInvalidMarginMode, "margin mode %q is neither cross nor isolated", in.MarginMode)
	}
	return nil
}

// PlanOpen sizes a copied open. Fund usage ratio = trader margin / trader
// equity; follower margin = investment x ratio (R6); size = margin x
// leverage / (price x ctVal), floored to the lot size, and raised to the
// minimum size when below it (R7). The fee is the taker fee on the notional.
func PlanOpen(inst Instrument, in OpenInputs) (OpenPlan, *Rejection) {
	if r := CheckOpen(inst, in); r != nil {
		return OpenPlan{}, r
	}
	var p OpenPlan
	p.Ratio = in.TraderMargin.DivRound(in.TraderEquity, RatioScale)
	p.TargetMargin = RoundMoney(in.Investment.Mul(p.Ratio))
	contractValue := in.Price.Mul(inst.CtVal)
	// The notional the target margin buys, floored to the MoneyScale grid
	// the notional is rounded on: with a fractional leverage, target x
	// leverage lies off that grid, and a size sized against it exactly
	// could have its notional rounded up past it, leaving the margin one
	// unit above the target (found by FuzzSizingAndClose).
	budget := p.TargetMargin.Mul(in.Leverage).RoundFloor(MoneyScale)
	p.Size = FloorToLot(budget.DivRound(contractValue, RatioScale), inst.LotSize)
	// DivRound may round the quotient up onto a lot boundary that the
	// exact quotient lies just below; one lot less is then within budget.
	if inst.LotSize.IsPositive() && p.Size.IsPositive() && p.Size.Mul(contractValue).GreaterThan(budget) {
		p.Size = p.Size.Sub(inst.LotSize)
	}
	if p.Size.LessThan(inst.MinSize) {
		p.Size = inst.MinSize
		p.MinSizeApplied = true
	}
	p.Notional = RoundMoney(p.Size.Mul(contractValue))
	p.Margin = InitialMargin(p.Notional, in.Leverage)
	p.Fee = Fee(p.Notional, inst.TakerFeeRate)
	return p, nil
}

// InitialMargin is notional / leverage, rounded up to MoneyScale so a
// position never holds less margin than its leverage requires.
func InitialMargin(notional, leverage decimal.Decimal) decimal.Decimal {
	return notional.DivRound(leverage, RatioScale).RoundCeil(MoneyScale)
}

// Fee is the taker fee on a notional, rounded up.
func Fee(notional, rate decimal.Decimal) decimal.Decimal {
	return RoundFeeUp(notional.Mul(rate))
}

// Notional is size x price x ctVal in USDT.
func Notional(inst Instrument, size, price decimal.Decimal) decimal.Decimal {
	return RoundMoney(size.Mul(price).Mul(inst.CtVal))
}

// WorstOpenPrice is the worst fill price spread protection accepts for an
// open on side, given the trader's fill price and a tolerance such as 0.005
// (R10): higher for a long, lower for a short.
func WorstOpenPrice(side Side, traderPrice, tolerance decimal.Decimal) decimal.Decimal {
	one := decimal.NewFromInt(1)
	if side == Short {
		return traderPrice.Mul(one.Sub(tolerance))
	}
	return traderPrice.Mul(one.Add(tolerance))
}

// SpreadExceeded reports whether a fill at price is worse than the trader's
// fill by more than the tolerance (R10). Closes are never checked.
func SpreadExceeded(side Side, traderPrice, price, tolerance decimal.Decimal) bool {
	worst := WorstOpenPrice(side, traderPrice, tolerance)
	if side == Short {
		return price.LessThan(worst)
	}
	return price.GreaterThan(worst)
}
