package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// MarkPriceChannel is the PostgreSQL notification channel a mark price
// change is announced on, so the risk sweep reacts at once instead of on
// its next tick (R21).
const MarkPriceChannel = "smartcopy_mark_prices"

// SetMarkPrice sets an instrument's latest mark price and announces the
// change on MarkPriceChannel when the transaction commits.
func (s *Store) SetMarkPrice(ctx context.Context, instID string, price decimal.Decimal) error {
	if !price.IsPositive() {
		return fieldErr("price", "must be positive, got %s", price)
	}
	tag, err := s.pool.Exec(ctx, `with set as (
			insert into mark_prices (inst_id, price)
			select id, $2 from instruments where id = $1
			on conflict (inst_id) do update set price = excluded.price, updated_at = now()
			returning inst_id)
		select pg_notify($3, inst_id) from set`, instID, price, MarkPriceChannel)
	if err != nil {
		return fail(err, "set mark price of %s", instID)
	}
	if tag.RowsAffected() == 0 {
		return fieldErr("inst_id", "unknown instrument %q", instID)
	}
	return nil
}

// MarkPrices are the latest mark prices by instrument id.
func (s *Store) MarkPrices(ctx context.Context) (map[string]decimal.Decimal, error) {
	rows, err := s.pool.Query(ctx, `select inst_id, price from mark_prices`)
	if err != nil {
		return nil, fail(err, "mark prices")
	}
	marks := make(map[string]decimal.Decimal)
	var id string
	var price decimal.Decimal
	_, err = pgx.ForEachRow(rows, []any{&id, &price}, func() error {
		marks[id] = price
		return nil
	})
	if err != nil {
		return nil, fail(err, "mark prices")
	}
	return marks, nil
}

// Breach is an active relationship whose net PnL has reached its stop loss
// (R20).
type Breach struct {
	RelationshipID, WorkflowID, FollowerID, TraderID string
	NetPnL, StopLoss                                 decimal.Decimal
}

// stopLossBreachesSQL computes every active relationship's net PnL in one
// pass: realized PnL less fees from its fund totals plus unrealized PnL
// of its positions at the latest mark. Each aggregate is grouped once per
// relationship, not queried per relationship, so one scan serves every
// relationship after a price move (R21). Unrealized PnL is rounded per
// position to 8 places as copytrade.UnrealizedPnL does (which rounds half
// to even; they can differ only on an exact half at the ninth place). A
// position without a mark price counts nothing, as in copytrade.FundFigures.
const stopLossBreachesSQL = `
with live as (
	select id, workflow_id, follower_id, trader_id, stop_loss
	from relationships
	where status = 'active' and stop_loss > 0
), realized as (
	select t.relationship_id, t.realized_pnl - t.fees as net
	from fund_totals t join live l on l.id = t.relationship_id
), unrealized as (
	select p.relationship_id,
		sum(round((m.price - p.avg_price) * p.size * i.ct_val * case p.side when 'long' then 1 else -1 end, 8)) as pnl
	from positions p
	join live l on l.id = p.relationship_id
	join instruments i on i.id = p.inst_id
	join mark_prices m on m.inst_id = p.inst_id
	where p.size > 0
	group by p.relationship_id
), net as (
	select l.*, coalesce(r.net, 0) + coalesce(u.pnl, 0) as net_pnl
	from live l
	left join realized r on r.relationship_id = l.id
	left join unrealized u on u.relationship_id = l.id
)
select id, workflow_id, follower_id, trader_id, net_pnl, stop_loss
from net
where net_pnl <= -stop_loss
order by id`

// StopLossBreaches lists every active relationship with a stop loss whose
// net PnL is at or below minus its stop loss (R20), in one query.
func (s *Store) StopLossBreaches(ctx context.Context) ([]Breach, error) {
	rows, err := s.pool.Query(ctx, stopLossBreachesSQL)
	if err != nil {
		return nil, fail(err, "stop loss breaches")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Breach, error) {
		var b Breach
		err := row.Scan(&b.RelationshipID, &b.WorkflowID, &b.FollowerID, &b.TraderID, &b.NetPnL, &b.StopLoss)
		return b, err
	})
	return out, fail(err, "stop loss breaches")
}
