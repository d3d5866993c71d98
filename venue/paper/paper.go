// Package paper is the paper trading venue: it fills market orders of copy
// relationships at the mark price stored in PostgreSQL, enforces lot size,
// minimum size and maximum leverage, charges the taker fee, and keeps each
// relationship's positions next to its copy fund in the ledger.
//
// Every change runs in one database transaction that first locks the
// relationship's fund account row (ledger.Balance selects it for update)
// and only then its positions, so concurrent orders and risk changes of one
// relationship serialize, and the available-funds check and the move that
// depends on it cannot interleave with another. Ledger moves then touch
// venue:pnl before venue:fees, always in that order, so two transactions of
// different relationships never wait on each other in a cycle.
//
// Every change is idempotent under its request's key: the client order id
// for orders (orders.client_order_id), the sync key for leverage and margin
// (risk_syncs.idempotency_key), and "handover/<relationship>" for a hand
// over. A repeated request returns the first result and changes nothing.
package paper

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/venue"
)

// Venue is the paper venue on PostgreSQL. It is safe for concurrent use, by
// any number of workers on the same database.
type Venue struct {
	pool *pgxpool.Pool

	// instruments caches the instruments table: listings do not change
	// while a worker runs, and every order reads its instrument.
	mu          sync.RWMutex
	instruments map[string]copytrade.Instrument
}

var _ venue.Venue = (*Venue)(nil)

// New returns the paper venue on pool, whose database has smartcopy's
// schema.
func New(pool *pgxpool.Pool) *Venue {
	return &Venue{pool: pool, instruments: make(map[string]copytrade.Instrument)}
}

// ErrInvalidRequest is returned for a request the venue cannot even record:
// no key or relationship, an unknown side or action. It is a caller's bug,
// not a market condition, so retrying cannot help.
var ErrInvalidRequest = errors.New("invalid request")

// querier is what both the pool and a transaction offer, so look-ups run
// inside a transaction without taking a second connection from the pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Instrument returns a listed instrument; an error wrapping
// venue.ErrUnknownInstrument when it is not listed.
func (v *Venue) Instrument(ctx context.Context, instID string) (copytrade.Instrument, error) {
	inst, ok, err := v.instrument(ctx, v.pool, instID)
	if err != nil {
		return copytrade.Instrument{}, fmt.Errorf("paper: instrument %s: %w", instID, err)
	}
	if !ok {
		return copytrade.Instrument{}, fmt.Errorf("paper: instrument %q: %w", instID, venue.ErrUnknownInstrument)
	}
	return inst, nil
}

// instrument reads an instrument through the cache. An unknown id is not
// cached, so a listing added later is found.
func (v *Venue) instrument(ctx context.Context, q querier, instID string) (copytrade.Instrument, bool, error) {
	v.mu.RLock()
	inst, ok := v.instruments[instID]
	v.mu.RUnlock()
	if ok {
		return inst, true, nil
	}
	inst = copytrade.Instrument{ID: instID}
	err := q.QueryRow(ctx, `select ct_val, lot_size, min_size, tick_size, max_leverage, taker_fee_rate, maint_margin_rate
		from instruments where id = $1`, instID).Scan(&inst.CtVal, &inst.LotSize, &inst.MinSize, &inst.TickSize,
		&inst.MaxLeverage, &inst.TakerFeeRate, &inst.MaintMarginRate)
	if errors.Is(err, pgx.ErrNoRows) {
		return copytrade.Instrument{}, false, nil
	}
	if err != nil {
		return copytrade.Instrument{}, false, err
	}
	v.mu.Lock()
	v.instruments[instID] = inst
	v.mu.Unlock()
	return inst, true, nil
}

// MarkPrice returns an instrument's latest mark price; an error wrapping
// venue.ErrUnknownInstrument or venue.ErrNoMarkPrice when there is none.
func (v *Venue) MarkPrice(ctx context.Context, instID string) (decimal.Decimal, error) {
	if _, err := v.Instrument(ctx, instID); err != nil {
		return decimal.Zero, err
	}
	price, ok, err := markPrice(ctx, v.pool, instID)
	if err != nil {
		return decimal.Zero, fmt.Errorf("paper: mark price of %s: %w", instID, err)
	}
	if !ok {
		return decimal.Zero, fmt.Errorf("paper: mark price of %s: %w", instID, venue.ErrNoMarkPrice)
	}
	return price, nil
}

func markPrice(ctx context.Context, q querier, instID string) (decimal.Decimal, bool, error) {
	var price decimal.Decimal
	err := q.QueryRow(ctx, `select price from mark_prices where inst_id = $1`, instID).Scan(&price)
	if errors.Is(err, pgx.ErrNoRows) {
		return decimal.Zero, false, nil
	}
	return price, err == nil, err
}

// Positions returns a relationship's open positions, ordered by instrument
// and side.
func (v *Venue) Positions(ctx context.Context, relationshipID string) ([]copytrade.Position, error) {
	rows, err := v.pool.Query(ctx, `select `+positionColumns+` from positions
		where relationship_id = $1 and size > 0 order by inst_id, side`, relationshipID)
	if err != nil {
		return nil, fmt.Errorf("paper: positions of %s: %w", relationshipID, err)
	}
	rs, err := pgx.CollectRows(rows, scanPosition)
	if err != nil {
		return nil, fmt.Errorf("paper: positions of %s: %w", relationshipID, err)
	}
	out := make([]copytrade.Position, len(rs))
	for i, r := range rs {
		out[i] = r.Position
	}
	return out, nil
}

// positionRow is a positions row: the position and what it accumulated
// over its life for its history row.
type positionRow struct {
	copytrade.Position
	MaxSize    decimal.Decimal
	ClosedSize decimal.Decimal
	CloseValue decimal.Decimal
	GrossPnL   decimal.Decimal
	Fees       decimal.Decimal
	OpenedAt   time.Time
}

const positionColumns = `inst_id, side, size, avg_price, leverage, margin_mode, margin,
	max_size, closed_size, close_value, gross_pnl, fees, opened_at`

func scanPosition(row pgx.CollectableRow) (positionRow, error) {
	var p positionRow
	err := row.Scan(&p.InstID, &p.Side, &p.Size, &p.AvgPrice, &p.Leverage, &p.MarginMode, &p.Margin,
		&p.MaxSize, &p.ClosedSize, &p.CloseValue, &p.GrossPnL, &p.Fees, &p.OpenedAt)
	return p, err
}

// lockPosition reads a relationship's position on (instrument, side) for
// update. Callers hold the fund lock already (see the package comment).
func lockPosition(ctx context.Context, tx pgx.Tx, relID, instID string, side copytrade.Side) (positionRow, bool, error) {
	rows, err := tx.Query(ctx, `select `+positionColumns+` from positions
		where relationship_id = $1 and inst_id = $2 and side = $3 for update`, relID, instID, string(side))
	if err != nil {
		return positionRow{}, false, err
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPosition)
	if errors.Is(err, pgx.ErrNoRows) {
		return positionRow{}, false, nil
	}
	if err != nil {
		return positionRow{}, false, err
	}
	return p, p.Size.IsPositive(), nil
}

// fund is a relationship's copy fund as the venue sees it, read under the
// fund row's lock: the ledger balance (investment + realized PnL - fees,
// R17) and the margin its positions use.
type fund struct {
	Balance decimal.Decimal
	Used    decimal.Decimal
}

// Available is what a new open or extra margin may take (R9, R15, R16).
func (f fund) Available() decimal.Decimal { return f.Balance.Sub(f.Used) }

// shortfall is how much of need the fund cannot cover.
func (f fund) shortfall(need decimal.Decimal) decimal.Decimal {
	return need.Sub(decimal.Max(f.Available(), decimal.Zero))
}

// lockFund locks the relationship's fund account row and reads its
// figures. A relationship that never received money has no account: its
// balance is zero and there is no row to lock, which is safe because such
// a relationship can hold no position (every open needs funds). PlaceOrder
// and HandOver create the account first so that they always hold a lock.
func lockFund(ctx context.Context, tx pgx.Tx, relID string) (fund, error) {
	var f fund
	var err error
	if f.Balance, err = ledger.Balance(ctx, tx, ledger.Fund(relID)); err != nil {
		return fund{}, fmt.Errorf("fund balance: %w", err)
	}
	if err := tx.QueryRow(ctx, `select coalesce(sum(margin), 0) from positions where relationship_id = $1`,
		relID).Scan(&f.Used); err != nil {
		return fund{}, fmt.Errorf("used margin: %w", err)
	}
	return f, nil
}

func validSide(s copytrade.Side) error {
	if !s.Valid() {
		return fmt.Errorf("%w: side must be long or short, got %q", ErrInvalidRequest, s)
	}
	return nil
}

func required(field, value string) error {
	if value == "" {
		return fmt.Errorf("%w: %s is required", ErrInvalidRequest, field)
	}
	return nil
}

// nullable turns a zero decimal into SQL null, for optional columns.
func nullable(d decimal.Decimal) any {
	if d.IsZero() {
		return nil
	}
	return d
}
