package paper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/venue"
)

// errTaken says the client order id (or its ledger key) was claimed by
// another transaction between our check and our insert: only possible for
// an id reused across relationships, since orders of one relationship
// serialize on its fund lock. The placement is rolled back and tried once
// more, which then finds the first order and replays it.
var errTaken = errors.New("client order id taken concurrently")

// PlaceOrder fills a market order for a relationship's copy fund at the
// mark price, in one transaction (R7-R14).
//
// An order the venue refuses is not an error: it is recorded in orders with
// status rejected, a reason from copytrade's list and a sentence, and
// returned as a rejected Fill (R9-R11, R25). Errors are for requests that
// cannot be recorded (ErrInvalidRequest) and for the database.
//
// Placing a client order id again returns the first result, filled or
// rejected, with Replayed set, and changes nothing (R7's retry, SPEC §3).
// A replayed Fill's Position is the relationship's position now, which is
// the position after the fill unless later orders changed it.
func (v *Venue) PlaceOrder(ctx context.Context, req venue.OrderRequest) (venue.Fill, error) {
	sizing, err := checkOrder(req)
	if err != nil {
		return venue.Fill{}, fmt.Errorf("paper: place %s: %w", req.ClientOrderID, err)
	}
	for attempt := 0; ; attempt++ {
		var fill venue.Fill
		err := pgx.BeginFunc(ctx, v.pool, func(tx pgx.Tx) error {
			var err error
			fill, err = v.place(ctx, tx, req, sizing)
			return err
		})
		if errors.Is(err, errTaken) && attempt == 0 {
			continue
		}
		if err != nil {
			return venue.Fill{}, fmt.Errorf("paper: place %s: %w", req.ClientOrderID, err)
		}
		return fill, nil
	}
}

// checkOrder refuses what cannot be recorded as an order at all, and
// encodes the sizing inputs for the orders row (null when there are none).
func checkOrder(req venue.OrderRequest) (any, error) {
	for _, f := range []struct{ name, value string }{
		{"client_order_id", req.ClientOrderID},
		{"relationship_id", req.RelationshipID},
		{"follower_id", req.FollowerID},
		{"inst_id", req.InstID},
	} {
		if err := required(f.name, f.value); err != nil {
			return nil, err
		}
	}
	if err := validSide(req.Side); err != nil {
		return nil, err
	}
	if req.Action != venue.Open && req.Action != venue.Close {
		return nil, fmt.Errorf("%w: action must be open or close, got %q", ErrInvalidRequest, req.Action)
	}
	if req.Sizing == nil {
		return nil, nil
	}
	b, err := json.Marshal(req.Sizing)
	if err != nil {
		return nil, fmt.Errorf("%w: sizing: %v", ErrInvalidRequest, err)
	}
	if string(b) == "null" {
		return nil, nil
	}
	return string(b), nil
}

func (v *Venue) place(ctx context.Context, tx pgx.Tx, req venue.OrderRequest, sizing any) (venue.Fill, error) {
	// Create the fund account if the relationship never got money, so
	// that there is always a row to lock: retries of one order and
	// orders of one relationship wait for each other right here.
	if err := ledger.EnsureAccount(ctx, tx, ledger.Fund(req.RelationshipID), "fund", req.FollowerID, req.RelationshipID); err != nil {
		return venue.Fill{}, err
	}
	f, err := lockFund(ctx, tx, req.RelationshipID)
	if err != nil {
		return venue.Fill{}, err
	}
	if prev, ok, err := readOrder(ctx, tx, req.ClientOrderID); err != nil {
		return venue.Fill{}, err
	} else if ok {
		fill := prev.fill()
		fill.Replayed = true
		fill.Position, err = currentPosition(ctx, tx, prev.RelationshipID, prev.InstID, prev.Side)
		return fill, err
	}

	o := orderRow{
		ClientOrderID:  req.ClientOrderID,
		RelationshipID: req.RelationshipID,
		FollowerID:     req.FollowerID,
		TraderID:       req.TraderID,
		TraderEventID:  req.TraderEventID,
		InstID:         req.InstID,
		Side:           req.Side,
		Action:         req.Action,
		Size:           req.Size,
		Leverage:       req.Leverage,
		MarginMode:     req.MarginMode,
		LimitPrice:     req.LimitPrice,
		Sizing:         sizing,
	}
	var after copytrade.Position
	if req.Action == venue.Open {
		after, err = v.open(ctx, tx, f, &o)
	} else {
		after, err = v.close(ctx, tx, f, &o)
	}
	if err != nil {
		return venue.Fill{}, err
	}
	if o.Status == venue.Rejected {
		// Nothing moved; the position is what it was.
		if after, err = currentPosition(ctx, tx, o.RelationshipID, o.InstID, o.Side); err != nil {
			return venue.Fill{}, err
		}
	}
	if err := insertOrder(ctx, tx, &o); err != nil {
		return venue.Fill{}, err
	}
	fill := o.fill()
	fill.Position = after
	return fill, nil
}

// open fills an open at the mark price and merges it into the position
// (R8), or records why it cannot (R9-R11).
func (v *Venue) open(ctx context.Context, tx pgx.Tx, f fund, o *orderRow) (copytrade.Position, error) {
	inst, ok, err := v.instrument(ctx, tx, o.InstID)
	if err != nil {
		return copytrade.Position{}, err
	}
	if !ok {
		return o.reject(copytrade.ReasonUnknownInstrument, "%s is not listed on the venue", o.InstID)
	}
	switch {
	case !o.Leverage.IsPositive():
		return o.reject(copytrade.ReasonInvalidLeverage, "leverage %s is not positive", o.Leverage)
	case o.Leverage.GreaterThan(inst.MaxLeverage):
		return o.reject(copytrade.ReasonLeverageAboveMax, "leverage %sx is above %s's maximum %sx", o.Leverage, inst.ID, inst.MaxLeverage)
	case !o.MarginMode.Valid():
		return o.reject(copytrade.ReasonInvalidMarginMode, "margin mode %q is neither cross nor isolated", o.MarginMode)
	case !o.Size.IsPositive() || !copytrade.IsLotMultiple(o.Size, inst.LotSize):
		return o.reject(copytrade.ReasonInvalidSize, "size %s is not a positive whole number of %s's lot size %s", o.Size, inst.ID, inst.LotSize)
	case o.Size.LessThan(inst.MinSize):
		return o.reject(copytrade.ReasonInvalidSize, "size %s is below %s's minimum order size %s", o.Size, inst.ID, inst.MinSize)
	}
	mark, ok, err := markPrice(ctx, tx, inst.ID)
	if err != nil {
		return copytrade.Position{}, err
	}
	if !ok {
		return o.reject(copytrade.ReasonNoMarkPrice, "%s has no mark price yet", inst.ID)
	}
	o.Price = mark
	// Spread protection (R10): the limit is the worst price the trader's
	// fill allows; a long must not pay more, a short not sell for less.
	if !o.LimitPrice.IsZero() && worseThan(o.Side, mark, o.LimitPrice) {
		return o.reject(copytrade.ReasonSpreadProtection,
			"the market price %s is worse than %s, the limit the trader's fill allows for a %s", mark, o.LimitPrice, o.Side)
	}
	notional := copytrade.Notional(inst, o.Size, mark)
	margin := copytrade.InitialMargin(notional, o.Leverage)
	fee := copytrade.Fee(notional, inst.TakerFeeRate)
	// R9: the check comes before any move; the ledger's overdraft
	// constraint is only the last line of defence.
	if need := margin.Add(fee); need.GreaterThan(f.Available()) {
		return o.reject(copytrade.ReasonInsufficientFunds,
			"the open needs %s USDT (margin %s + fee %s) but the copy fund has %s available",
			need, margin, fee, f.Available())
	}

	pos, held, err := lockPosition(ctx, tx, o.RelationshipID, o.InstID, o.Side)
	if err != nil {
		return copytrade.Position{}, err
	}
	before := copytrade.Position{InstID: o.InstID, Side: o.Side}
	if held {
		before = pos.Position
	}
	after := copytrade.Merge(before, o.Size, mark, margin, o.Leverage, o.MarginMode)
	if _, err := tx.Exec(ctx, `insert into positions (relationship_id, inst_id, side, size, avg_price, leverage,
			margin_mode, margin, max_size, fees)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $4, $9)
		on conflict (relationship_id, inst_id, side) do update set
			size = excluded.size, avg_price = excluded.avg_price, leverage = excluded.leverage,
			margin_mode = excluded.margin_mode, margin = excluded.margin,
			max_size = greatest(positions.max_size, excluded.size),
			fees = positions.fees + excluded.fees, updated_at = now()`,
		o.RelationshipID, o.InstID, string(o.Side), after.Size, after.AvgPrice, after.Leverage,
		string(after.MarginMode), after.Margin, fee); err != nil {
		return copytrade.Position{}, fmt.Errorf("merge position: %w", err)
	}
	fundAcct := ledger.Fund(o.RelationshipID)
	if err := post(ctx, tx, ledger.Move{
		Key: orderKey(o.ClientOrderID), Kind: "open_fee", FollowerID: o.FollowerID, RelationshipID: o.RelationshipID,
		Memo: fmt.Sprintf("open %s %s %s at %s", o.Size, o.InstID, o.Side, mark),
		Postings: []ledger.Posting{
			{Account: fundAcct, Amount: fee.Neg()},
			{Account: ledger.VenueFees, Amount: fee},
		},
	}); err != nil {
		return copytrade.Position{}, err
	}
	o.Status, o.Fee, o.Margin = venue.Filled, fee, margin
	return after, nil
}

// close fills a close of min(size, held) at the mark price: realized PnL
// and the fee go to the copy fund (R14), the closed share of the margin is
// released, and a position closed to zero moves to position_history (R26).
func (v *Venue) close(ctx context.Context, tx pgx.Tx, f fund, o *orderRow) (copytrade.Position, error) {
	inst, ok, err := v.instrument(ctx, tx, o.InstID)
	if err != nil {
		return copytrade.Position{}, err
	}
	if !ok {
		return o.reject(copytrade.ReasonUnknownInstrument, "%s is not listed on the venue", o.InstID)
	}
	pos, held, err := lockPosition(ctx, tx, o.RelationshipID, o.InstID, o.Side)
	if err != nil {
		return copytrade.Position{}, err
	}
	if !held {
		return o.reject(copytrade.ReasonNoPosition, "no %s position on %s to close", o.Side, o.InstID)
	}
	// A close carries the position's own risk parameters, whatever the
	// request says.
	o.Leverage, o.MarginMode = pos.Leverage, pos.MarginMode
	if !o.Size.IsPositive() || !copytrade.IsLotMultiple(o.Size, inst.LotSize) {
		return o.reject(copytrade.ReasonInvalidSize, "size %s is not a positive whole number of %s's lot size %s", o.Size, inst.ID, inst.LotSize)
	}
	// No minimum size on closes: what is left below the minimum must
	// still be closable.
	o.Size = decimal.Min(o.Size, pos.Size)
	mark, ok, err := markPrice(ctx, tx, inst.ID)
	if err != nil {
		return copytrade.Position{}, err
	}
	if !ok {
		return o.reject(copytrade.ReasonNoMarkPrice, "%s has no mark price yet", inst.ID)
	}
	o.Price = mark
	r := copytrade.Close(inst, pos.Position, o.Size, mark)
	gross := r.GrossPnL
	// The paper venue does not liquidate, so a position can lose more than
	// the fund holds. A real venue's liquidation and insurance fund stop a
	// loss at the account's equity; here the venue absorbs what the fund
	// cannot pay, so the close still fills, the fund ends at zero and the
	// relationship is not stuck on an overdraft it can never cover.
	if left := f.Balance.Add(gross).Sub(r.Fee); left.IsNegative() {
		gross = gross.Sub(left)
		o.Detail = fmt.Sprintf("the loss exceeded the copy fund; the venue absorbed %s USDT of it", left.Neg())
	}
	fundAcct := ledger.Fund(o.RelationshipID)
	if err := post(ctx, tx, ledger.Move{
		Key: orderKey(o.ClientOrderID), Kind: "close", FollowerID: o.FollowerID, RelationshipID: o.RelationshipID,
		Memo: fmt.Sprintf("close %s %s %s at %s", o.Size, o.InstID, o.Side, mark),
		// venue:pnl before venue:fees: the lock order of the package
		// comment.
		Postings: []ledger.Posting{
			{Account: ledger.VenuePnL, Amount: gross.Neg()},
			{Account: fundAcct, Amount: gross},
			{Account: fundAcct, Amount: r.Fee.Neg()},
			{Account: ledger.VenueFees, Amount: r.Fee},
		},
	}); err != nil {
		return copytrade.Position{}, err
	}

	closedSize := pos.ClosedSize.Add(o.Size)
	closeValue := pos.CloseValue.Add(o.Size.Mul(mark))
	if r.After.Size.IsZero() {
		if _, err := tx.Exec(ctx, `insert into position_history (relationship_id, inst_id, side, max_size,
				avg_open_price, avg_close_price, gross_pnl, fees, outcome, opened_at)
			values ($1, $2, $3, $4, $5, $6, $7, $8, 'closed', $9)`,
			o.RelationshipID, o.InstID, string(o.Side), pos.MaxSize, pos.AvgPrice,
			closeValue.DivRound(closedSize, copytrade.RatioScale), pos.GrossPnL.Add(gross), pos.Fees.Add(r.Fee),
			pos.OpenedAt); err != nil {
			return copytrade.Position{}, fmt.Errorf("record closed position: %w", err)
		}
		if _, err := tx.Exec(ctx, `delete from positions where relationship_id = $1 and inst_id = $2 and side = $3`,
			o.RelationshipID, o.InstID, string(o.Side)); err != nil {
			return copytrade.Position{}, fmt.Errorf("delete closed position: %w", err)
		}
	} else if _, err := tx.Exec(ctx, `update positions set size = $4, margin = $5, closed_size = $6, close_value = $7,
			gross_pnl = gross_pnl + $8, fees = fees + $9, updated_at = now()
		where relationship_id = $1 and inst_id = $2 and side = $3`,
		o.RelationshipID, o.InstID, string(o.Side), r.After.Size, r.After.Margin, closedSize, closeValue,
		gross, r.Fee); err != nil {
		return copytrade.Position{}, fmt.Errorf("reduce position: %w", err)
	}
	o.Status, o.Fee, o.Margin, o.GrossPnL = venue.Filled, r.Fee, r.MarginReleased, gross
	return r.After, nil
}

// worseThan reports whether a fill at price is worse than limit for side:
// higher for a long, lower for a short.
func worseThan(side copytrade.Side, price, limit decimal.Decimal) bool {
	if side == copytrade.Short {
		return price.LessThan(limit)
	}
	return price.GreaterThan(limit)
}

// orderKey is the ledger idempotency key of an order's money move.
func orderKey(clientOrderID string) string { return "order/" + clientOrderID }

// post applies a move that must be new: the orders row was not there, so
// its ledger key cannot have been used either, unless another transaction
// claimed the same id.
func post(ctx context.Context, tx pgx.Tx, m ledger.Move) error {
	posted, err := ledger.Post(ctx, tx, m)
	if err != nil {
		return err
	}
	if !posted {
		return fmt.Errorf("ledger move %s: %w", m.Key, errTaken)
	}
	return nil
}

// orderRow is an orders row.
type orderRow struct {
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
	LimitPrice     decimal.Decimal
	Sizing         any
	CreatedAt      time.Time
}

// reject marks the order rejected with a reason and a sentence; the
// position is unchanged.
func (o *orderRow) reject(reason, format string, args ...any) (copytrade.Position, error) {
	o.Status, o.Reason, o.Detail = venue.Rejected, reason, fmt.Sprintf(format, args...)
	return copytrade.Position{}, nil
}

// fill is the order as the venue reports it; a fresh and a replayed
// placement report the same row the same way. A rejected order keeps the
// size it asked for.
func (o orderRow) fill() venue.Fill {
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

func insertOrder(ctx context.Context, tx pgx.Tx, o *orderRow) error {
	err := tx.QueryRow(ctx, `insert into orders (client_order_id, relationship_id, follower_id, trader_id, trader_event_id,
			inst_id, side, action, status, reason, detail, size, price, fee, margin, gross_pnl, leverage, margin_mode,
			limit_price, sizing)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20::jsonb)
		on conflict (client_order_id) do nothing returning created_at`,
		o.ClientOrderID, o.RelationshipID, o.FollowerID, o.TraderID, o.TraderEventID, o.InstID, string(o.Side),
		string(o.Action), string(o.Status), o.Reason, o.Detail, o.Size, o.Price, o.Fee, o.Margin, o.GrossPnL,
		o.Leverage, string(o.MarginMode), nullable(o.LimitPrice), o.Sizing).Scan(&o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return errTaken
	}
	if err != nil {
		return fmt.Errorf("record order: %w", err)
	}
	return nil
}

func readOrder(ctx context.Context, q querier, clientOrderID string) (orderRow, bool, error) {
	var o orderRow
	var limit decimal.NullDecimal
	err := q.QueryRow(ctx, `select client_order_id, relationship_id, follower_id, trader_id, trader_event_id, inst_id,
			side, action, status, reason, detail, size, price, fee, margin, gross_pnl, leverage, margin_mode,
			limit_price, created_at
		from orders where client_order_id = $1`, clientOrderID).Scan(&o.ClientOrderID, &o.RelationshipID,
		&o.FollowerID, &o.TraderID, &o.TraderEventID, &o.InstID, &o.Side, &o.Action, &o.Status, &o.Reason, &o.Detail,
		&o.Size, &o.Price, &o.Fee, &o.Margin, &o.GrossPnL, &o.Leverage, &o.MarginMode, &limit, &o.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return orderRow{}, false, nil
	}
	if err != nil {
		return orderRow{}, false, fmt.Errorf("read order: %w", err)
	}
	o.LimitPrice = limit.Decimal
	return o, true, nil
}

// currentPosition is the relationship's position on (instrument, side), or
// an empty one with its key when it holds nothing there.
func currentPosition(ctx context.Context, q querier, relID, instID string, side copytrade.Side) (copytrade.Position, error) {
	p := copytrade.Position{InstID: instID, Side: side}
	var mode string
	err := q.QueryRow(ctx, `select size, avg_price, leverage, margin_mode, margin from positions
		where relationship_id = $1 and inst_id = $2 and side = $3`, relID, instID, string(side)).
		Scan(&p.Size, &p.AvgPrice, &p.Leverage, &mode, &p.Margin)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return copytrade.Position{}, fmt.Errorf("read position: %w", err)
	}
	p.MarginMode = copytrade.MarginMode(mode)
	return p, nil
}
