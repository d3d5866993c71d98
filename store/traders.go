package store

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// TraderBook is a lead trader's account equity and open positions as the
// recorded events left them, and the sequence of the last event applied.
type TraderBook struct {
	TraderID  string
	Equity    decimal.Decimal
	LastSeq   int64
	Positions []copytrade.Position
}

// Position is the trader's position on key, if the book holds one.
func (b TraderBook) Position(key copytrade.PositionKey) (copytrade.Position, bool) {
	for _, p := range b.Positions {
		if p.Key() == key {
			return p, true
		}
	}
	return copytrade.Position{}, false
}

// RegisterTrader creates a lead trader or sets its account equity.
func (s *Store) RegisterTrader(ctx context.Context, traderID string, equity decimal.Decimal) error {
	if fe := copytrade.ValidateID("trader_id", traderID); fe != nil {
		return fe
	}
	if equity.IsNegative() {
		return fieldErr("equity", "must not be negative, got %s", equity)
	}
	_, err := s.pool.Exec(ctx, `insert into traders (id, equity) values ($1, $2)
		on conflict (id) do update set equity = excluded.equity`, traderID, equity)
	return fail(err, "register trader %s", traderID)
}

// RecordTraderEvent records one event of a lead trader and applies it to
// the trader's book, in one transaction. The event gets the trader's next
// sequence number, and the figures followers need that upstream does not
// send: the size before a close and the margin before a margin change,
// both from the book. The same event id recorded again returns the event
// as first recorded with fresh false, and changes nothing (R24).
//
// A close of more than the book holds, or a margin removal of more than
// the position's margin, is refused (R25): the book and upstream disagree,
// and copying it would close or free what the trader never had.
func (s *Store) RecordTraderEvent(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, bool, error) {
	if fe := ev.Validate(); fe != nil {
		return copytrade.TraderEvent{}, false, fe
	}
	var out copytrade.TraderEvent
	var fresh bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `insert into traders (id) values ($1) on conflict (id) do nothing`, ev.TraderID); err != nil {
			return err
		}
		// The lock comes before the duplicate check so that two deliveries
		// of one event racing each other see each other.
		var lastSeq int64
		if err := tx.QueryRow(ctx, `select last_seq from traders where id = $1 for update`, ev.TraderID).Scan(&lastSeq); err != nil {
			return err
		}
		stored, found, err := storedEvent(ctx, tx, ev.TraderID, ev.EventID)
		if err != nil || found {
			out = stored
			return err
		}
		applied, err := applyToBook(ctx, tx, ev)
		if err != nil {
			return err
		}
		applied.Seq = lastSeq + 1
		payload, err := json.Marshal(applied)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into trader_events (trader_id, seq, event_id, kind, payload) values ($1, $2, $3, $4, $5)`,
			applied.TraderID, applied.Seq, applied.EventID, string(applied.Kind), string(payload)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `update traders set last_seq = $2,
			equity = case when $3::numeric > 0 then $3::numeric else equity end where id = $1`,
			applied.TraderID, applied.Seq, applied.Equity); err != nil {
			return err
		}
		out, fresh = applied, true
		return nil
	})
	if err != nil {
		return copytrade.TraderEvent{}, false, fail(err, "record event %s of trader %s", ev.EventID, ev.TraderID)
	}
	return out, fresh, nil
}

func storedEvent(ctx context.Context, tx pgx.Tx, traderID, eventID string) (copytrade.TraderEvent, bool, error) {
	var payload []byte
	err := tx.QueryRow(ctx, `select payload from trader_events where trader_id = $1 and event_id = $2`, traderID, eventID).Scan(&payload)
	if noRows(err) {
		return copytrade.TraderEvent{}, false, nil
	}
	if err != nil {
		return copytrade.TraderEvent{}, false, err
	}
	var ev copytrade.TraderEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return copytrade.TraderEvent{}, false, err
	}
	return ev, true, nil
}

// applyToBook changes the trader's position on the event's (instrument,
// side) and returns the event with SizeBefore and MarginBefore filled. An
// instrument the venue does not list has no book (trader_positions refers
// to instruments): the event is still recorded, so that each follower
// records its copy as failed with unknown_instrument (R11).
func applyToBook(ctx context.Context, tx pgx.Tx, ev copytrade.TraderEvent) (copytrade.TraderEvent, error) {
	inst, known, err := instrument(ctx, tx, ev.InstID)
	if err != nil {
		return ev, err
	}
	pos, held, err := bookPosition(ctx, tx, ev.TraderID, ev.Key())
	if err != nil {
		return ev, err
	}
	switch ev.Kind {
	case copytrade.EventOpen:
		if !known {
			return ev, nil
		}
		if !held {
			pos = copytrade.Position{InstID: ev.InstID, Side: ev.Side}
		}
		return ev, saveBookPosition(ctx, tx, ev.TraderID, copytrade.Merge(pos, ev.Size, ev.Price, ev.Margin, ev.Leverage, ev.MarginMode))

	case copytrade.EventClose:
		if !held {
			// Nothing on the book: the trader opened before smartcopy
			// saw it. Upstream's size before is the best figure; without
			// one the close is taken as a full close.
			if ev.SizeBefore.LessThan(ev.Size) {
				ev.SizeBefore = ev.Size
			}
			return ev, nil
		}
		if ev.Size.GreaterThan(pos.Size) {
			return ev, fieldErr("size", "closes %s but the trader holds %s", ev.Size, pos.Size)
		}
		ev.SizeBefore = pos.Size
		after := pos
		after.Size = pos.Size.Sub(ev.Size)
		after.Margin = copytrade.RoundMoney(pos.Margin.Mul(after.Size).DivRound(pos.Size, copytrade.RatioScale))
		return ev, saveBookPosition(ctx, tx, ev.TraderID, after)

	case copytrade.EventLeverage:
		if !held {
			return ev, nil
		}
		if pos.MarginMode == copytrade.Isolated {
			pos.Margin = copytrade.LeverageMargin(inst, pos, ev.Leverage)
		}
		pos.Leverage = ev.Leverage
		return ev, saveBookPosition(ctx, tx, ev.TraderID, pos)

	case copytrade.EventMargin:
		if !held {
			return ev, nil
		}
		ev.MarginBefore = pos.Margin
		after := pos.Margin.Add(ev.MarginDelta)
		if after.IsNegative() {
			return ev, fieldErr("margin_delta", "removes %s but the position holds %s margin", ev.MarginDelta.Neg(), pos.Margin)
		}
		pos.Margin = after
		return ev, saveBookPosition(ctx, tx, ev.TraderID, pos)
	}
	return ev, nil
}

func bookPosition(ctx context.Context, q querier, traderID string, key copytrade.PositionKey) (copytrade.Position, bool, error) {
	p := copytrade.Position{InstID: key.InstID, Side: key.Side}
	err := q.QueryRow(ctx, `select size, avg_price, leverage, margin_mode, margin from trader_positions
		where trader_id = $1 and inst_id = $2 and side = $3`, traderID, key.InstID, string(key.Side)).
		Scan(&p.Size, &p.AvgPrice, &p.Leverage, &p.MarginMode, &p.Margin)
	if noRows(err) {
		return copytrade.Position{}, false, nil
	}
	return p, err == nil, err
}

// saveBookPosition writes a book position; an empty one is deleted, so the
// book lists only what the trader holds.
func saveBookPosition(ctx context.Context, tx pgx.Tx, traderID string, p copytrade.Position) error {
	if !p.Size.IsPositive() {
		_, err := tx.Exec(ctx, `delete from trader_positions where trader_id = $1 and inst_id = $2 and side = $3`,
			traderID, p.InstID, string(p.Side))
		return err
	}
	_, err := tx.Exec(ctx, `insert into trader_positions (trader_id, inst_id, side, size, avg_price, leverage, margin_mode, margin)
		values ($1, $2, $3, $4, $5, $6, $7, $8)
		on conflict (trader_id, inst_id, side) do update set size = excluded.size, avg_price = excluded.avg_price,
			leverage = excluded.leverage, margin_mode = excluded.margin_mode, margin = excluded.margin`,
		traderID, p.InstID, string(p.Side), p.Size, p.AvgPrice, p.Leverage, string(p.MarginMode), p.Margin)
	return err
}

// TraderBook returns a trader's equity, last sequence and positions;
// ErrUnknownTrader if the trader was never registered nor sent an event.
func (s *Store) TraderBook(ctx context.Context, traderID string) (TraderBook, error) {
	b, err := traderBook(ctx, s.pool, traderID)
	return b, fail(err, "book of trader %s", traderID)
}

func traderBook(ctx context.Context, q querier, traderID string) (TraderBook, error) {
	b := TraderBook{TraderID: traderID}
	err := q.QueryRow(ctx, `select equity, last_seq from traders where id = $1`, traderID).Scan(&b.Equity, &b.LastSeq)
	if noRows(err) {
		return TraderBook{}, ErrUnknownTrader
	}
	if err != nil {
		return TraderBook{}, err
	}
	rows, err := q.Query(ctx, `select inst_id, side, size, avg_price, leverage, margin_mode, margin
		from trader_positions where trader_id = $1 and size > 0 order by inst_id, side`, traderID)
	if err != nil {
		return TraderBook{}, err
	}
	b.Positions, err = pgx.CollectRows(rows, scanPosition)
	return b, err
}

// scanPosition reads inst_id, side, size, avg_price, leverage, margin_mode,
// margin in that order.
func scanPosition(row pgx.CollectableRow) (copytrade.Position, error) {
	var p copytrade.Position
	err := row.Scan(&p.InstID, &p.Side, &p.Size, &p.AvgPrice, &p.Leverage, &p.MarginMode, &p.Margin)
	return p, err
}

// instrument reads one instrument; known is false when the venue does not
// list it.
func instrument(ctx context.Context, q querier, instID string) (copytrade.Instrument, bool, error) {
	var i copytrade.Instrument
	err := q.QueryRow(ctx, `select id, ct_val, lot_size, min_size, tick_size, max_leverage, taker_fee_rate, maint_margin_rate
		from instruments where id = $1`, instID).
		Scan(&i.ID, &i.CtVal, &i.LotSize, &i.MinSize, &i.TickSize, &i.MaxLeverage, &i.TakerFeeRate, &i.MaintMarginRate)
	if noRows(err) {
		return copytrade.Instrument{}, false, nil
	}
	return i, err == nil, err
}

// TraderEventsAfter returns the trader's recorded events with a sequence
// number above afterSeq, in order, at most limit of them. A relationship
// reads them to fill a gap in what it was signalled: every published event
// is recorded here before it is sent.
func (s *Store) TraderEventsAfter(ctx context.Context, traderID string, afterSeq int64, limit int) ([]copytrade.TraderEvent, error) {
	rows, err := s.pool.Query(ctx, `select payload from trader_events
		where trader_id = $1 and seq > $2 order by seq limit $3`, traderID, afterSeq, limit)
	if err != nil {
		return nil, fail(err, "trader events of %s after %d", traderID, afterSeq)
	}
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fail(err, "trader events of %s after %d", traderID, afterSeq)
	}
	events := make([]copytrade.TraderEvent, 0, len(payloads))
	for _, p := range payloads {
		var ev copytrade.TraderEvent
		if err := json.Unmarshal(p, &ev); err != nil {
			return nil, fail(err, "decode trader event of %s", traderID)
		}
		events = append(events, ev)
	}
	return events, nil
}
