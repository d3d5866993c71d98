package copytrade

import (
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// EventKind is what the lead trader did.
type EventKind string

const (
	EventOpen     EventKind = "open"
	EventClose    EventKind = "close"
	EventLeverage EventKind = "leverage"
	EventMargin   EventKind = "margin"
)

// TraderEvent is one thing the lead trader did, as upstream publishes it.
// EventID is upstream's id (the same id delivered twice is one event, R24);
// Seq is the trader's order, assigned when the event is recorded.
type TraderEvent struct {
	EventID  string    `json:"event_id"`
	TraderID string    `json:"trader_id"`
	Seq      int64     `json:"seq,omitempty"`
	Kind     EventKind `json:"kind"`
	InstID   string    `json:"inst_id"`
	Side     Side      `json:"side"`
	// Open: the trader's order margin, account equity as of the order,
	// leverage, margin mode, fill price and size.
	MarginMode MarginMode      `json:"margin_mode,omitempty"`
	Leverage   decimal.Decimal `json:"leverage,omitzero"`
	Margin     decimal.Decimal `json:"margin,omitzero"`
	Equity     decimal.Decimal `json:"equity,omitzero"`
	Price      decimal.Decimal `json:"price,omitzero"`
	// Size is contracts opened (open) or closed (close).
	Size decimal.Decimal `json:"size,omitzero"`
	// SizeBefore is the trader's size on (instrument, side) before a close;
	// filled from the trader's book when the event is recorded.
	SizeBefore decimal.Decimal `json:"size_before,omitzero"`
	// MarginDelta is the margin the trader added (positive) or removed
	// (negative) on an isolated position; MarginBefore is that position's
	// margin before, filled from the trader's book.
	MarginDelta  decimal.Decimal `json:"margin_delta,omitzero"`
	MarginBefore decimal.Decimal `json:"margin_before,omitzero"`
	At           time.Time       `json:"at,omitzero"`
}

// Key is the event's (instrument, side).
func (e TraderEvent) Key() PositionKey { return PositionKey{InstID: e.InstID, Side: e.Side} }

// maxIDLength bounds ids that end up in workflow ids, client order ids and
// idempotency keys.
const maxIDLength = 128

// ValidateID checks a user, trader or event id: non-empty, bounded, and free
// of the separator and whitespace used in workflow ids.
func ValidateID(field, id string) *FieldError {
	switch {
	case id == "":
		return fieldErr(field, "is required")
	case len(id) > maxIDLength:
		return fieldErr(field, "is longer than %d characters", maxIDLength)
	case strings.ContainsAny(id, "/ \t\r\n"):
		return fieldErr(field, "must not contain '/' or whitespace")
	}
	return nil
}

// Validate checks the shape of an event as upstream sends it: the fields
// each kind needs, with sane signs. Trading rules (leverage above the
// instrument's maximum, unknown instrument) are applied later, per follower,
// as recorded failures (R11); a malformed event is refused whole (R25).
func (e TraderEvent) Validate() *FieldError {
	if err := ValidateID("event_id", e.EventID); err != nil {
		return err
	}
	if err := ValidateID("trader_id", e.TraderID); err != nil {
		return err
	}
	if e.InstID == "" {
		return fieldErr("inst_id", "is required")
	}
	if !e.Side.Valid() {
		return fieldErr("side", "must be long or short, got %q", e.Side)
	}
	for _, f := range []struct {
		name  string
		value decimal.Decimal
	}{
		{"leverage", e.Leverage}, {"margin", e.Margin}, {"equity", e.Equity}, {"price", e.Price}, {"size", e.Size},
		{"size_before", e.SizeBefore}, {"margin_delta", e.MarginDelta}, {"margin_before", e.MarginBefore},
	} {
		if err := ValidateMagnitude(f.name, f.value); err != nil {
			return err
		}
	}
	switch e.Kind {
	case EventOpen:
		if !e.MarginMode.Valid() {
			return fieldErr("margin_mode", "must be cross or isolated, got %q", e.MarginMode)
		}
		if !e.Size.IsPositive() {
			return fieldErr("size", "must be positive, got %s", e.Size)
		}
	case EventClose:
		if !e.Size.IsPositive() {
			return fieldErr("size", "must be positive, got %s", e.Size)
		}
		if !e.Price.IsPositive() {
			return fieldErr("price", "must be positive, got %s", e.Price)
		}
	case EventLeverage:
		if !e.Leverage.IsPositive() {
			return fieldErr("leverage", "must be positive, got %s", e.Leverage)
		}
	case EventMargin:
		if e.MarginDelta.IsZero() {
			return fieldErr("margin_delta", "must not be zero")
		}
	default:
		return fieldErr("kind", "must be open, close, leverage or margin, got %q", e.Kind)
	}
	return nil
}

// Rules are the product's configurable numbers (SPEC.md §2 defaults).
type Rules struct {
	MinInvestment         decimal.Decimal `json:"min_investment"`
	MaxFollowersPerTrader int             `json:"max_followers_per_trader"`
	MaxTradersPerFollower int             `json:"max_traders_per_follower"`
	// SpreadTolerance is R10's 0.5%, as 0.005.
	SpreadTolerance decimal.Decimal `json:"spread_tolerance"`
}

// DefaultRules are SPEC.md's defaults.
func DefaultRules() Rules {
	return Rules{
		MinInvestment:         decimal.NewFromInt(100),
		MaxFollowersPerTrader: 1000,
		MaxTradersPerFollower: 20,
		SpreadTolerance:       decimal.RequireFromString("0.005"),
	}
}

// FollowRequest is what a follower sets when following a trader (R1).
type FollowRequest struct {
	FollowerID   string          `json:"follower_id"`
	TraderID     string          `json:"trader_id"`
	Investment   decimal.Decimal `json:"investment"`
	CopyExisting bool            `json:"copy_existing"`
	// StopLoss is the maximum acceptable loss in USDT; zero means none.
	StopLoss decimal.Decimal `json:"stop_loss,omitzero"`
	StopMode StopMode        `json:"stop_mode,omitempty"`
}

// Normalize fills defaults: the stop mode is market_close unless set.
func (r FollowRequest) Normalize() FollowRequest {
	if r.StopMode == "" {
		r.StopMode = MarketClose
	}
	return r
}

// Validate applies the checks of R1 and R3 that need no database: ids,
// following yourself, the minimum investment, the stop loss and stop mode.
func (r FollowRequest) Validate(rules Rules) *FieldError {
	if err := ValidateID("follower_id", r.FollowerID); err != nil {
		return err
	}
	if err := ValidateID("trader_id", r.TraderID); err != nil {
		return err
	}
	if r.FollowerID == r.TraderID {
		return fieldErr("trader_id", "a follower cannot follow themselves")
	}
	if err := ValidateInvestment("investment", r.Investment, rules); err != nil {
		return err
	}
	if err := ValidateStopLoss(r.StopLoss); err != nil {
		return err
	}
	if r.StopMode != "" && !r.StopMode.Valid() {
		return fieldErr("stop_mode", "must be market_close, copy_close or manual_close, got %q", r.StopMode)
	}
	return nil
}

// ValidateInvestment checks an investment amount: positive and at least the
// minimum (R1, R3).
func ValidateInvestment(field string, amount decimal.Decimal, rules Rules) *FieldError {
	if !amount.IsPositive() {
		return fieldErr(field, "must be a positive amount of USDT, got %s", amount)
	}
	if err := ValidateMagnitude(field, amount); err != nil {
		return err
	}
	if amount.LessThan(rules.MinInvestment) {
		return fieldErr(field, "must be at least %s USDT, got %s", rules.MinInvestment, amount)
	}
	if !amount.Equal(amount.Round(MoneyScale)) {
		return fieldErr(field, "has more than %d decimal places", MoneyScale)
	}
	return nil
}

// ValidateStopLoss checks a stop-loss amount: zero (none) or positive, at
// most MoneyScale decimal places, not above MaxAmount.
func ValidateStopLoss(amount decimal.Decimal) *FieldError {
	if amount.IsNegative() {
		return fieldErr("stop_loss", "must be a positive amount of USDT, got %s", amount)
	}
	if err := ValidateMagnitude("stop_loss", amount); err != nil {
		return err
	}
	if !amount.Equal(amount.Round(MoneyScale)) {
		return fieldErr("stop_loss", "has more than %d decimal places", MoneyScale)
	}
	return nil
}

// ValidateAmount checks an amount of USDT moved by a request: positive,
// at most MoneyScale decimal places, not above MaxAmount.
func ValidateAmount(field string, amount decimal.Decimal) *FieldError {
	if !amount.IsPositive() {
		return fieldErr(field, "must be a positive amount of USDT, got %s", amount)
	}
	if err := ValidateMagnitude(field, amount); err != nil {
		return err
	}
	if !amount.Equal(amount.Round(MoneyScale)) {
		return fieldErr(field, "has more than %d decimal places", MoneyScale)
	}
	return nil
}

// MaxAmount bounds every figure a request or a trader event carries: more
// USDT than exists (about 1e11), or contracts, prices or leverage beyond
// any listing. A figure above it is a typo or an attack; refusing it keeps
// sums, products and PostgreSQL's numerics far from absurd sizes.
var MaxAmount = decimal.New(1, 15)

// ValidateMagnitude refuses a figure whose size is above MaxAmount.
func ValidateMagnitude(field string, d decimal.Decimal) *FieldError {
	if d.Abs().GreaterThan(MaxAmount) {
		// A huge figure is named by its order of magnitude, not printed
		// digit by digit.
		return fieldErr(field, "is too large: at most 1e15, got about 1e%d", d.NumDigits()+int(d.Exponent())-1)
	}
	return nil
}

// ParseAmount reads a decimal from text, refusing what is not a finite
// number (NaN, Inf, empty, garbage) or is above MaxAmount, with the
// field's name.
func ParseAmount(field, text string) (decimal.Decimal, *FieldError) {
	text = strings.TrimSpace(text)
	if text == "" {
		return decimal.Zero, fieldErr(field, "is required")
	}
	d, err := decimal.NewFromString(text)
	if err != nil {
		if len(text) > 40 {
			text = text[:40] + "…"
		}
		return decimal.Zero, fieldErr(field, "is not a number: %q", text)
	}
	if fe := ValidateMagnitude(field, d); fe != nil {
		return decimal.Zero, fe
	}
	return d, nil
}
