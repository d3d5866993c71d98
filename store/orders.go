package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/venue"
)

// OrderRecord is one row of orders: a copy order filled by the venue or
// rejected before or by it, with the trader event and sizing inputs that
// produced it (R26).
type OrderRecord struct {
	ID             int64
	ClientOrderID  string
	RelationshipID string
	FollowerID     string
	TraderID       string
	TraderEventID  string
	InstID         string
	Side           copytrade.Side
	Action         venue.Action
	Status         venue.Status
	Reason         string
	Detail         string
	Size           decimal.Decimal
	Price          decimal.Decimal
	Fee            decimal.Decimal
	Margin         decimal.Decimal
	GrossPnL       decimal.Decimal
	Leverage       decimal.Decimal
	MarginMode     copytrade.MarginMode
	// LimitPrice is the worst fill price spread protection allowed (R10);
	// nil when there was none.
	LimitPrice *decimal.Decimal
	// Sizing is the sizing inputs and plan as the workflow recorded them;
	// nil when there were none.
	Sizing    json.RawMessage
	CreatedAt time.Time
}

// Fill is the record as the venue reports an order's result.
func (o OrderRecord) Fill() venue.Fill {
	return venue.Fill{
		ClientOrderID: o.ClientOrderID,
		Status:        o.Status,
		Reason:        o.Reason,
		Detail:        o.Detail,
		Size:          o.Size,
		Price:         o.Price,
		Fee:           o.Fee,
		Margin:        o.Margin,
		GrossPnL:      o.GrossPnL,
		FilledAt:      o.CreatedAt,
	}
}

const orderColumns = `id, client_order_id, relationship_id, follower_id, trader_id, trader_event_id, inst_id, side, action,
	status, reason, detail, size, price, fee, margin, gross_pnl, leverage, margin_mode, limit_price, sizing, created_at`

func scanOrder(row pgx.CollectableRow) (OrderRecord, error) {
	var o OrderRecord
	var sizing []byte
	err := row.Scan(&o.ID, &o.ClientOrderID, &o.RelationshipID, &o.FollowerID, &o.TraderID, &o.TraderEventID, &o.InstID,
		&o.Side, &o.Action, &o.Status, &o.Reason, &o.Detail, &o.Size, &o.Price, &o.Fee, &o.Margin, &o.GrossPnL,
		&o.Leverage, &o.MarginMode, &o.LimitPrice, &sizing, &o.CreatedAt)
	if sizing != nil {
		o.Sizing = json.RawMessage(sizing)
	}
	return o, err
}

// RecordRejectedOrder records a copy order that was not placed, with the
// rule that refused it: refused by the copy rules before the venue (R9–R11)
// or failed on the way. The client order id makes it idempotent: if an
// order with that id is already recorded, filled or not, that record is
// returned with Replayed set and nothing is written.
func (s *Store) RecordRejectedOrder(ctx context.Context, req venue.OrderRequest, r *copytrade.Rejection) (venue.Fill, error) {
	if r == nil {
		return venue.Fill{}, errors.New("store: record rejected order: no rejection given")
	}
	if req.ClientOrderID == "" {
		return venue.Fill{}, fieldErr("client_order_id", "is required")
	}
	var sizing any
	if req.Sizing != nil {
		b, err := json.Marshal(req.Sizing)
		if err != nil {
			return venue.Fill{}, fail(err, "record rejected order %s: sizing", req.ClientOrderID)
		}
		sizing = string(b)
	}
	var limit *decimal.Decimal
	if !req.LimitPrice.IsZero() {
		limit = &req.LimitPrice
	}
	rows, err := s.pool.Query(ctx, `insert into orders (client_order_id, relationship_id, follower_id, trader_id, trader_event_id,
			inst_id, side, action, status, reason, detail, size, leverage, margin_mode, limit_price, sizing)
		values ($1, $2, $3, $4, $5, $6, $7, $8, 'rejected', $9, $10, $11, $12, $13, $14, $15::jsonb)
		on conflict (client_order_id) do nothing returning `+orderColumns,
		req.ClientOrderID, req.RelationshipID, req.FollowerID, req.TraderID, req.TraderEventID,
		req.InstID, string(req.Side), string(req.Action), r.Reason, r.Detail, req.Size, req.Leverage,
		string(req.MarginMode), limit, sizing)
	if err != nil {
		return venue.Fill{}, fail(err, "record rejected order %s", req.ClientOrderID)
	}
	o, err := pgx.CollectExactlyOneRow(rows, scanOrder)
	if err == nil {
		return o.Fill(), nil
	}
	if !noRows(err) {
		return venue.Fill{}, fail(err, "record rejected order %s", req.ClientOrderID)
	}
	o, err = s.Order(ctx, req.ClientOrderID)
	if err != nil {
		return venue.Fill{}, err
	}
	fill := o.Fill()
	fill.Replayed = true
	return fill, nil
}

// ErrUnknownOrder is returned for a client order id never recorded.
var ErrUnknownOrder = errors.New("unknown order")

// Order reads one order by its client order id; ErrUnknownOrder if none.
func (s *Store) Order(ctx context.Context, clientOrderID string) (OrderRecord, error) {
	rows, err := s.pool.Query(ctx, `select `+orderColumns+` from orders where client_order_id = $1`, clientOrderID)
	if err != nil {
		return OrderRecord{}, fail(err, "order %s", clientOrderID)
	}
	o, err := pgx.CollectExactlyOneRow(rows, scanOrder)
	if noRows(err) {
		err = ErrUnknownOrder
	}
	return o, fail(err, "order %s", clientOrderID)
}

// Orders lists a relationship's orders in the order they were recorded.
func (s *Store) Orders(ctx context.Context, relID string) ([]OrderRecord, error) {
	rows, err := s.pool.Query(ctx, `select `+orderColumns+` from orders where relationship_id = $1 order by id`, relID)
	if err != nil {
		return nil, fail(err, "orders of %s", relID)
	}
	out, err := pgx.CollectRows(rows, scanOrder)
	return out, fail(err, "orders of %s", relID)
}

// InvestmentChange is one change of a relationship's investment (R26).
// Amount is what moved, always positive; Kind says which way: follow and
// raise put money in, lower and release take it out.
type InvestmentChange struct {
	ID              int64
	RelationshipID  string
	Key             string
	Kind            string
	Amount          decimal.Decimal
	InvestmentAfter decimal.Decimal
	CreatedAt       time.Time
}

// InvestmentChanges lists a relationship's investment changes, oldest first.
func (s *Store) InvestmentChanges(ctx context.Context, relID string) ([]InvestmentChange, error) {
	rows, err := s.pool.Query(ctx, `select id, relationship_id, idempotency_key, kind, amount, investment_after, created_at
		from investment_changes where relationship_id = $1 order by id`, relID)
	if err != nil {
		return nil, fail(err, "investment changes of %s", relID)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (InvestmentChange, error) {
		var c InvestmentChange
		err := row.Scan(&c.ID, &c.RelationshipID, &c.Key, &c.Kind, &c.Amount, &c.InvestmentAfter, &c.CreatedAt)
		return c, err
	})
	return out, fail(err, "investment changes of %s", relID)
}

// HistoricalPosition is a closed position (R26): how large it got, its
// average open and close prices, PnL, fees, and whether it was closed on
// the venue or handed over to the follower's own account.
type HistoricalPosition struct {
	ID             int64
	RelationshipID string
	InstID         string
	Side           copytrade.Side
	MaxSize        decimal.Decimal
	AvgOpenPrice   decimal.Decimal
	// AvgClosePrice is nil for a position handed over rather than closed.
	AvgClosePrice *decimal.Decimal
	GrossPnL      decimal.Decimal
	Fees          decimal.Decimal
	Outcome       string
	OpenedAt      time.Time
	ClosedAt      time.Time
}

// PositionHistory lists a relationship's closed positions, oldest first.
func (s *Store) PositionHistory(ctx context.Context, relID string) ([]HistoricalPosition, error) {
	rows, err := s.pool.Query(ctx, `select id, relationship_id, inst_id, side, max_size, avg_open_price, avg_close_price,
			gross_pnl, fees, outcome, opened_at, closed_at
		from position_history where relationship_id = $1 order by id`, relID)
	if err != nil {
		return nil, fail(err, "position history of %s", relID)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HistoricalPosition, error) {
		var h HistoricalPosition
		err := row.Scan(&h.ID, &h.RelationshipID, &h.InstID, &h.Side, &h.MaxSize, &h.AvgOpenPrice, &h.AvgClosePrice,
			&h.GrossPnL, &h.Fees, &h.Outcome, &h.OpenedAt, &h.ClosedAt)
		return h, err
	})
	return out, fail(err, "position history of %s", relID)
}

// RiskSync is one leverage or margin sync of a relationship's position
// (R15, R16), applied, failed or skipped. The before and after figures
// are nil when the venue did not record them.
type RiskSync struct {
	ID             int64
	Key            string
	RelationshipID string
	TraderEventID  string
	Kind           string
	InstID         string
	Side           copytrade.Side
	Status         venue.SyncStatus
	Reason         string
	LeverageBefore *decimal.Decimal
	LeverageAfter  *decimal.Decimal
	MarginBefore   *decimal.Decimal
	MarginAfter    *decimal.Decimal
	CreatedAt      time.Time
}

// RiskSyncs lists a relationship's leverage and margin syncs, oldest first.
func (s *Store) RiskSyncs(ctx context.Context, relID string) ([]RiskSync, error) {
	rows, err := s.pool.Query(ctx, `select id, idempotency_key, relationship_id, trader_event_id, kind, inst_id, side, status,
			reason, leverage_before, leverage_after, margin_before, margin_after, created_at
		from risk_syncs where relationship_id = $1 order by id`, relID)
	if err != nil {
		return nil, fail(err, "risk syncs of %s", relID)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RiskSync, error) {
		var r RiskSync
		err := row.Scan(&r.ID, &r.Key, &r.RelationshipID, &r.TraderEventID, &r.Kind, &r.InstID, &r.Side, &r.Status,
			&r.Reason, &r.LeverageBefore, &r.LeverageAfter, &r.MarginBefore, &r.MarginAfter, &r.CreatedAt)
		return r, err
	})
	return out, fail(err, "risk syncs of %s", relID)
}
