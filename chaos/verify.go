package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"go.temporal.io/api/serviceerror"

	"smartcopy/activities"
	"smartcopy/audit"
	"smartcopy/copytrade"
	"smartcopy/workflows"
)

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// settle waits until every live relationship has applied the trader's
// last event and every ended one's workflow has closed. A relationship
// that does not get there is stuck: a failure.
func (ss *session) settle(ctx context.Context) error {
	last := ss.sent[len(ss.sent)-1].Seq
	for _, fl := range ss.followers {
		if !fl.ended {
			if err := ss.waitApplied(ctx, fl, last); err != nil {
				return fmt.Errorf("stuck: %w", err)
			}
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		var res workflows.Result
		err := ss.s.client.GetWorkflow(wctx, workflows.WorkflowID(fl.id, ss.trader), "").Get(wctx, &res)
		cancel()
		if err != nil {
			return fmt.Errorf("stuck: %s's workflow did not close after unfollow: %w", fl.id, err)
		}
	}
	return nil
}

// orderRow is what the count needs of an order.
type orderRow struct {
	event, inst, side, status string
	size                      decimal.Decimal
}

// verify counts, for every relationship and every trader event it
// applied, the orders and syncs it should have produced against those in
// PostgreSQL; sums what the workflows counted; and runs the audit.
func (ss *session) verify(ctx context.Context) error {
	f := ss.f
	events, err := ss.recordedEvents(ctx)
	if err != nil {
		return err
	}
	var placedTotal int
	if err := ss.s.pool.QueryRow(ctx, `select count(*),
			count(*) filter (where status = 'filled'), count(*) filter (where status = 'rejected') from orders`).
		Scan(&placedTotal, &f.OrdersFilled, &f.OrdersRejected); err != nil {
		return err
	}
	f.OrdersPlaced = placedTotal
	if err := ss.s.pool.QueryRow(ctx, `select count(*) filter (where idempotency_key not like '%/retry-%'),
			count(*) filter (where idempotency_key like '%/retry-%') from risk_syncs`).Scan(&f.SyncsRecorded, &f.SyncRetries); err != nil {
		return err
	}
	counted := 0
	for _, fl := range ss.followers {
		n, err := ss.countRelationship(ctx, fl, events)
		if err != nil {
			return err
		}
		counted += n
	}
	if counted != placedTotal {
		f.problem("orders: %d in PostgreSQL, %d of them belong to an event a relationship applied", placedTotal, counted)
	}
	if f.OrdersExpected != f.OrdersPlaced {
		f.problem("orders: expected %d, placed %d", f.OrdersExpected, f.OrdersPlaced)
	}

	for _, fl := range ss.followers {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v, err := ss.s.api.State(qctx, fl.id, ss.trader)
		cancel()
		if err != nil {
			f.problem("%s: state query: %v", fl.id, err)
			continue
		}
		c := v.State.Counters
		f.WFDuplicates += c.Duplicates
		f.WFLate += c.Late
		f.WFGaps += c.GapsSkipped
		f.WFInvalid += c.Invalid
		f.WFContinued += c.ContinuedAsNew
	}
	if f.WFGaps > 0 || f.WFLate > 0 || f.WFInvalid > 0 {
		f.problem("workflows skipped %d gaps, dropped %d late and %d invalid events: every event was delivered and valid", f.WFGaps, f.WFLate, f.WFInvalid)
	}

	rep, err := retry(ctx, f, "audit", func(ctx context.Context) (audit.Report, error) {
		return audit.Run(ctx, ss.s.api, audit.Options{Settle: 10 * time.Second})
	})
	if err != nil {
		return err
	}
	f.AuditChecks, f.AuditOK = len(rep.Checks), rep.OK()
	for _, d := range rep.Differences {
		f.problem("audit: %s", d)
	}
	if ss.cfg.Verbose && ss.cfg.Log != nil {
		rep.Print(ss.cfg.Log)
	}
	return nil
}

// recordedEvents are the trader's events as recorded (with the size and
// margin before that the store filled in), in the trader's order.
func (ss *session) recordedEvents(ctx context.Context) ([]copytrade.TraderEvent, error) {
	rows, err := ss.s.pool.Query(ctx, `select payload from trader_events where trader_id = $1 order by seq`, ss.trader)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (copytrade.TraderEvent, error) {
		var payload []byte
		var ev copytrade.TraderEvent
		if err := row.Scan(&payload); err != nil {
			return ev, err
		}
		return ev, json.Unmarshal(payload, &ev)
	})
}

// countRelationship walks one relationship through the events it applied
// and compares, event by event, the orders and syncs it should have with
// those it has. Which events place an order follows from what the
// relationship holds, and that from its own filled orders: an open always
// records an order (filled or refused); a close places one if something is
// held there and its share is not below one lot; a leverage change always
// records a sync, a margin change only on a held position; a stop closes
// every held position at market (or hands them over: no order). It
// returns how many orders it accounted for.
func (ss *session) countRelationship(ctx context.Context, fl *follower, events []copytrade.TraderEvent) (int, error) {
	f := ss.f
	rows, err := ss.s.pool.Query(ctx, `select trader_event_id, inst_id, side, status, size from orders where relationship_id = $1 order by id`, fl.relID)
	if err != nil {
		return 0, err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orderRow, error) {
		var o orderRow
		return o, row.Scan(&o.event, &o.inst, &o.side, &o.status, &o.size)
	})
	if err != nil {
		return 0, err
	}
	orders := map[string][]orderRow{}
	for _, o := range list {
		orders[o.event] = append(orders[o.event], o)
	}
	var syncKeys []string
	srows, err := ss.s.pool.Query(ctx, `select idempotency_key from risk_syncs where relationship_id = $1`, fl.relID)
	if err != nil {
		return 0, err
	}
	if syncKeys, err = pgx.CollectRows(srows, pgx.RowTo[string]); err != nil {
		return 0, err
	}
	syncs := map[string]int{}
	for _, k := range syncKeys {
		syncs[k]++
	}

	kinds := map[string]copytrade.EventKind{}
	for _, ev := range events {
		kinds[ev.EventID] = ev.Kind
	}
	held := map[copytrade.PositionKey]decimal.Decimal{}
	take := func(rows []orderRow) {
		for _, o := range rows {
			if o.status != "filled" {
				continue
			}
			k := copytrade.PositionKey{InstID: o.inst, Side: copytrade.Side(o.side)}
			if kinds[o.event] == copytrade.EventClose || o.event == workflows.StopUnfollow || o.event == workflows.StopLoss {
				held[k] = held[k].Sub(o.size)
			} else {
				held[k] = held[k].Add(o.size)
			}
		}
	}
	counted := 0
	expect := func(what string, want int, rows []orderRow) {
		f.OrdersExpected += want
		counted += len(rows)
		if len(rows) != want {
			f.problem("%s (relationship %s): %s: expected %d order(s), found %d", fl.id, fl.relID, what, want, len(rows))
		}
	}
	// Copies of the trader's positions at follow time come first (R5).
	for _, p := range fl.book {
		id := fmt.Sprintf("existing-%s-%s", p.InstID, p.Side)
		rows := orders[id]
		expect("copy of existing "+p.Key().String(), 1, rows)
		take(rows)
	}
	for _, ev := range events {
		if ev.Seq <= fl.followSeq || (fl.ended && ev.Seq > fl.stopSeq && !fl.racy[ev.Seq]) {
			if n := len(orders[ev.EventID]); n > 0 {
				counted += n
				f.problem("%s: %d order(s) for trader event %s (seq %d), which it never applied", fl.id, n, ev.EventID, ev.Seq)
			}
			continue
		}
		rows := orders[ev.EventID]
		k := ev.Key()
		what := fmt.Sprintf("%s %s %s (event %s, seq %d)", ev.Kind, ev.InstID, ev.Side, ev.EventID, ev.Seq)
		switch ev.Kind {
		case copytrade.EventOpen:
			want := 1
			if fl.racy[ev.Seq] {
				// Copied before the unfollow, or not at all.
				want = min(len(rows), 1)
			}
			expect(what, want, rows)
		case copytrade.EventClose:
			want := 0
			if held[k].IsPositive() && copytrade.CloseSize(held[k], ev.Size, ev.SizeBefore, lot).IsPositive() {
				want = 1
			}
			expect(what, want, rows)
		case copytrade.EventLeverage, copytrade.EventMargin:
			expect(what, 0, rows)
			want := 1
			if ev.Kind == copytrade.EventMargin && !held[k].IsPositive() {
				want = 0
			}
			key := activities.ClientOrderID(fl.relID, ev.EventID)
			f.SyncsExpected += want
			if syncs[key] != want {
				f.problem("%s (relationship %s): %s: expected %d sync(s), found %d", fl.id, fl.relID, what, want, syncs[key])
			}
		}
		take(rows)
	}
	// The stop (unfollow or stop loss): market_close closes every held
	// position, one order each; manual_close hands them over, with no
	// order.
	stops := orders[fl.stopEvent]
	wantStops := 0
	if fl.ended && fl.mode == copytrade.MarketClose {
		for _, size := range held {
			if size.IsPositive() {
				wantStops++
			}
		}
	}
	expect("close at "+fl.stopEvent, wantStops, stops)
	take(stops)

	// What the relationship holds by its own orders is what the venue holds.
	if !fl.ended {
		_, positions, err := ss.s.store.Figures(ctx, fl.relID)
		if err != nil {
			return counted, err
		}
		venue := map[copytrade.PositionKey]decimal.Decimal{}
		for _, p := range positions {
			venue[p.Key()] = p.Size
		}
		for k, size := range held {
			if !size.Equal(venue[k]) {
				f.problem("%s: its orders leave %s %s, the venue holds %s", fl.id, k, size, venue[k])
			}
		}
		for k, size := range venue {
			if _, ok := held[k]; !ok {
				f.problem("%s: the venue holds %s %s that no order of it opened", fl.id, k, size)
			}
		}
	}
	return counted, nil
}
