// Package venue is the trading venue smartcopy places copy orders on. The
// project ships a paper venue on PostgreSQL (package venue/paper); a real
// exchange adapter implements the same interface.
//
// A venue account is one copy relationship's isolated copy fund: orders,
// positions and margin belong to the relationship, never to the follower's
// manual account.
package venue

import (
	"context"
	"errors"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// Action says whether an order opens (adds to) or closes (reduces) a position.
type Action string

const (
	Open  Action = "open"
	Close Action = "close"
)

// OrderRequest is a market order for one relationship's copy fund.
type OrderRequest struct {
	// ClientOrderID is derived from the relationship and the trader event
	// (never from run or activity ids): placing it twice returns the first
	// result and places nothing new.
	ClientOrderID  string               `json:"client_order_id"`
	RelationshipID string               `json:"relationship_id"`
	FollowerID     string               `json:"follower_id"`
	TraderID       string               `json:"trader_id"`
	TraderEventID  string               `json:"trader_event_id"`
	InstID         string               `json:"inst_id"`
	Side           copytrade.Side       `json:"side"`
	Action         Action               `json:"action"`
	Size           decimal.Decimal      `json:"size"`
	Leverage       decimal.Decimal      `json:"leverage"`
	MarginMode     copytrade.MarginMode `json:"margin_mode"`
	// LimitPrice, when set on an open, is the worst acceptable fill price
	// (spread protection, R10): a market order that would fill worse is
	// rejected with reason spread_protection and nothing is placed.
	LimitPrice decimal.Decimal `json:"limit_price,omitzero"`
	// Sizing is what produced Size, kept with the order so a follower can
	// see why (R26). Opaque to the venue.
	Sizing any `json:"sizing,omitempty"`
}

// Status of an order.
type Status string

const (
	Filled   Status = "filled"
	Rejected Status = "rejected"
)

// Fill is the result of an order: filled (with price, fee, realized PnL and
// the position after) or rejected (with a reason from copytrade's list).
type Fill struct {
	ClientOrderID string          `json:"client_order_id"`
	Status        Status          `json:"status"`
	Reason        string          `json:"reason,omitempty"`
	Detail        string          `json:"detail,omitempty"`
	Size          decimal.Decimal `json:"size"`
	Price         decimal.Decimal `json:"price"`
	Fee           decimal.Decimal `json:"fee"`
	Margin        decimal.Decimal `json:"margin"`
	// GrossPnL is the close's realized PnL before the fee (zero on opens).
	GrossPnL decimal.Decimal `json:"gross_pnl"`
	// Position is the relationship's position on (instrument, side) after
	// the fill; Size zero when the close emptied it.
	Position copytrade.Position `json:"position"`
	FilledAt time.Time          `json:"filled_at"`
	// Replayed says the client order id had been placed before and this is
	// the first result again.
	Replayed bool `json:"replayed,omitempty"`
}

// SyncStatus is the outcome of a leverage or margin change.
type SyncStatus string

const (
	SyncApplied SyncStatus = "applied"
	// SyncFailed: the copy fund cannot cover the extra margin (reason
	// insufficient_funds) or the change is refused (another reason).
	SyncFailed SyncStatus = "failed"
	// SyncSkipped: the relationship holds nothing on (instrument, side), or
	// the change is already in effect.
	SyncSkipped SyncStatus = "skipped"
)

// LeverageRequest sets the leverage of a relationship's position (R15).
type LeverageRequest struct {
	// Key makes the change idempotent: the same key applies once and
	// returns its first result.
	Key            string          `json:"key"`
	RelationshipID string          `json:"relationship_id"`
	TraderEventID  string          `json:"trader_event_id"`
	InstID         string          `json:"inst_id"`
	Side           copytrade.Side  `json:"side"`
	Leverage       decimal.Decimal `json:"leverage"`
}

// MarginRequest adds (positive Delta) or removes (negative) margin on a
// relationship's isolated position (R16).
type MarginRequest struct {
	Key            string          `json:"key"`
	RelationshipID string          `json:"relationship_id"`
	TraderEventID  string          `json:"trader_event_id"`
	InstID         string          `json:"inst_id"`
	Side           copytrade.Side  `json:"side"`
	Delta          decimal.Decimal `json:"delta"`
}

// SyncResult is the outcome of a LeverageRequest or MarginRequest.
type SyncResult struct {
	Status   SyncStatus         `json:"status"`
	Reason   string             `json:"reason,omitempty"`
	Detail   string             `json:"detail,omitempty"`
	Before   copytrade.Position `json:"before"`
	Position copytrade.Position `json:"position"`
	// Shortfall is the extra margin the fund could not cover.
	Shortfall decimal.Decimal `json:"shortfall,omitzero"`
}

// HandOverRequest moves every position of a relationship, with its margin,
// to the follower's own account (stop setting manual_close, R1).
type HandOverRequest struct {
	Key            string `json:"key"`
	RelationshipID string `json:"relationship_id"`
	FollowerID     string `json:"follower_id"`
}

// ErrUnknownInstrument is returned for an instrument the venue does not list.
var ErrUnknownInstrument = errors.New("unknown instrument")

// ErrNoMarkPrice is returned when an instrument has no mark price yet.
var ErrNoMarkPrice = errors.New("no mark price")

// Venue places orders and changes risk parameters of a relationship's
// positions. Every method that changes something is idempotent under its
// request's key.
type Venue interface {
	Instrument(ctx context.Context, instID string) (copytrade.Instrument, error)
	MarkPrice(ctx context.Context, instID string) (decimal.Decimal, error)
	PlaceOrder(ctx context.Context, req OrderRequest) (Fill, error)
	SetLeverage(ctx context.Context, req LeverageRequest) (SyncResult, error)
	AdjustMargin(ctx context.Context, req MarginRequest) (SyncResult, error)
	Positions(ctx context.Context, relationshipID string) ([]copytrade.Position, error)
	HandOver(ctx context.Context, req HandOverRequest) ([]copytrade.Position, error)
}
