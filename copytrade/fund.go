package copytrade

import "github.com/shopspring/decimal"

// Fund is the money of one copy relationship (R17). Investment is the net of
// what the follower moved in and out; RealizedPnL is before fees; Fees are
// every open and close fee paid.
type Fund struct {
	Investment  decimal.Decimal `json:"investment"`
	RealizedPnL decimal.Decimal `json:"realized_pnl"`
	Fees        decimal.Decimal `json:"fees"`
}

// Equity is investment + realized PnL - fees.
func (f Fund) Equity() decimal.Decimal {
	return f.Investment.Add(f.RealizedPnL).Sub(f.Fees)
}

// Figures are a fund's numbers as the follower sees them.
type Figures struct {
	Investment    decimal.Decimal `json:"investment"`
	RealizedPnL   decimal.Decimal `json:"realized_pnl"`
	Fees          decimal.Decimal `json:"fees"`
	Equity        decimal.Decimal `json:"equity"`
	Used          decimal.Decimal `json:"used"`
	Available     decimal.Decimal `json:"available"`
	UnrealizedPnL decimal.Decimal `json:"unrealized_pnl"`
	// NetPnL is realized PnL - fees + unrealized PnL at mark (R20).
	NetPnL decimal.Decimal `json:"net_pnl"`
}

// FundFigures computes R17 and R20 for a fund holding positions; marks maps
// instrument id to the latest mark price, and instruments gives each
// position's contract value. A position whose mark is unknown counts no
// unrealized PnL.
func FundFigures(f Fund, positions []Position, instruments map[string]Instrument, marks map[string]decimal.Decimal) Figures {
	fig := Figures{
		Investment:  f.Investment,
		RealizedPnL: f.RealizedPnL,
		Fees:        f.Fees,
		Equity:      f.Equity(),
	}
	for _, p := range positions {
		fig.Used = fig.Used.Add(p.Margin)
		if inst, ok := instruments[p.InstID]; ok {
			fig.UnrealizedPnL = fig.UnrealizedPnL.Add(UnrealizedPnL(inst, p, marks[p.InstID]))
		}
	}
	fig.Available = fig.Equity.Sub(fig.Used)
	fig.NetPnL = f.RealizedPnL.Sub(f.Fees).Add(fig.UnrealizedPnL)
	return fig
}

// StopLossBreached reports whether net PnL has reached the stop-loss amount
// (R20): net <= -stopLoss. A zero stop loss means none is set.
func StopLossBreached(net, stopLoss decimal.Decimal) bool {
	return stopLoss.IsPositive() && net.LessThanOrEqual(stopLoss.Neg())
}
