// Package copytrade holds the rules of Smart Copy Trading as pure functions:
// sizing an open from the trader's fund usage ratio, merging and closing
// positions, realized and unrealized PnL, the copy fund's figures and the
// stop-loss test. It imports neither Temporal nor SQL, so every rule of
// SPEC.md §2 that is arithmetic can be tested here with worked numbers.
package copytrade

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// Side is the direction of a position.
type Side string

const (
	Long  Side = "long"
	Short Side = "short"
)

// Valid reports whether s is one of the two sides.
func (s Side) Valid() bool { return s == Long || s == Short }

// sign is +1 for long and -1 for short: PnL of a short is the long PnL
// sign-flipped (R14).
func (s Side) sign() decimal.Decimal {
	if s == Short {
		return decimal.NewFromInt(-1)
	}
	return decimal.NewFromInt(1)
}

// MarginMode is how a position's margin is held.
type MarginMode string

const (
	Cross    MarginMode = "cross"
	Isolated MarginMode = "isolated"
)

// Valid reports whether m is one of the two margin modes.
func (m MarginMode) Valid() bool { return m == Cross || m == Isolated }

// StopMode says what happens to open positions when a relationship stops
// (unfollow or stop loss), R1.
type StopMode string

const (
	// MarketClose closes every position at market now (the default).
	MarketClose StopMode = "market_close"
	// CopyClose opens nothing new, keeps closing as the trader closes and
	// finishes when flat.
	CopyClose StopMode = "copy_close"
	// ManualClose hands the positions to the follower's own account and
	// releases the rest of the fund now.
	ManualClose StopMode = "manual_close"
)

// Valid reports whether m is one of the three stop modes.
func (m StopMode) Valid() bool { return m == MarketClose || m == CopyClose || m == ManualClose }

// Instrument is a USDT-margined perpetual swap as the venue lists it.
type Instrument struct {
	ID string `json:"id"`
	// CtVal is the contract value in base units per contract.
	CtVal decimal.Decimal `json:"ct_val"`
	// LotSize is the size increment in contracts.
	LotSize decimal.Decimal `json:"lot_size"`
	// MinSize is the smallest order in contracts.
	MinSize         decimal.Decimal `json:"min_size"`
	TickSize        decimal.Decimal `json:"tick_size"`
	MaxLeverage     decimal.Decimal `json:"max_leverage"`
	TakerFeeRate    decimal.Decimal `json:"taker_fee_rate"`
	MaintMarginRate decimal.Decimal `json:"maint_margin_rate"`
}

// PositionKey names one position of a relationship: an instrument and a side.
type PositionKey struct {
	InstID string `json:"inst_id"`
	Side   Side   `json:"side"`
}

// String is the key's stable text form, used as a map key that survives
// JSON (workflow state crosses continue-as-new as JSON).
func (k PositionKey) String() string { return k.InstID + "/" + string(k.Side) }

// Position is what a relationship holds on one (instrument, side).
type Position struct {
	InstID     string          `json:"inst_id"`
	Side       Side            `json:"side"`
	Size       decimal.Decimal `json:"size"` // contracts
	AvgPrice   decimal.Decimal `json:"avg_price"`
	Leverage   decimal.Decimal `json:"leverage"`
	MarginMode MarginMode      `json:"margin_mode"`
	Margin     decimal.Decimal `json:"margin"`
}

// Key is the position's (instrument, side).
func (p Position) Key() PositionKey { return PositionKey{InstID: p.InstID, Side: p.Side} }

// FieldError is a rejected input: which field, and why. Every refusal of
// user or upstream input carries one (R25).
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// fieldErr builds a FieldError with a formatted reason.
func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Failure reasons of a copy order that was not placed (R9–R11). They are
// stable strings: stored with the order, shown to the follower, counted in
// metrics.
const (
	ReasonInsufficientFunds  = "insufficient_funds"
	ReasonSpreadProtection   = "spread_protection"
	ReasonLeverageAboveMax   = "leverage_above_max"
	ReasonUnknownInstrument  = "unknown_instrument"
	ReasonInvalidMargin      = "invalid_margin"
	ReasonInvalidEquity      = "invalid_equity"
	ReasonInvalidPrice       = "invalid_price"
	ReasonInvalidLeverage    = "invalid_leverage"
	ReasonInvalidMarginMode  = "invalid_margin_mode"
	ReasonNoPosition         = "no_position"
	ReasonMarginModeMismatch = "margin_mode_mismatch"
	ReasonMarginBelowZero    = "margin_below_zero"
	// ReasonInvalidSize: an order size that is not a positive whole number
	// of lots, or an open below the instrument's minimum size.
	ReasonInvalidSize = "invalid_size"
	// ReasonNoMarkPrice: the venue has no mark price for the instrument
	// yet, so it cannot fill a market order.
	ReasonNoMarkPrice = "no_mark_price"
	// ReasonMarginBelowMaintenance: removing margin would leave an
	// isolated position with less than its maintenance margin (R16).
	ReasonMarginBelowMaintenance = "margin_below_maintenance"
)

// Rejection is a copy that the rules refuse: a reason code from the list
// above and a sentence for the follower.
type Rejection struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Detail }

func reject(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}
