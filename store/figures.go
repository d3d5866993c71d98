package store

import (
	"context"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// Figures are a relationship's fund figures (R17, R20) and its open
// positions: the investment from the relationship row, realized PnL and
// fees from its filled orders, used margin and unrealized PnL from its
// positions at the latest mark prices.
func (s *Store) Figures(ctx context.Context, relID string) (copytrade.Figures, []copytrade.Position, error) {
	fig, positions, err := figures(ctx, s.pool, relID)
	if err != nil {
		return copytrade.Figures{}, nil, fail(err, "figures of %s", relID)
	}
	return fig, positions, nil
}

func figures(ctx context.Context, q querier, relID string) (copytrade.Figures, []copytrade.Position, error) {
	var fund copytrade.Fund
	err := q.QueryRow(ctx, `select r.investment, coalesce(t.realized_pnl, 0), coalesce(t.fees, 0)
		from relationships r left join fund_totals t on t.relationship_id = r.id
		where r.id = $1`, relID).Scan(&fund.Investment, &fund.RealizedPnL, &fund.Fees)
	if noRows(err) {
		return copytrade.Figures{}, nil, ErrUnknownRelationship
	}
	if err != nil {
		return copytrade.Figures{}, nil, err
	}
	// Positions with what unrealized PnL needs (contract value, mark) in
	// one query: this runs after every copy.
	rows, err := q.Query(ctx, `select p.inst_id, p.side, p.size, p.avg_price, p.leverage, p.margin_mode, p.margin,
			i.ct_val, coalesce(m.price, 0)
		from positions p
		join instruments i on i.id = p.inst_id
		left join mark_prices m on m.inst_id = p.inst_id
		where p.relationship_id = $1 and p.size > 0
		order by p.inst_id, p.side`, relID)
	if err != nil {
		return copytrade.Figures{}, nil, err
	}
	var positions []copytrade.Position
	instruments := make(map[string]copytrade.Instrument)
	marks := make(map[string]decimal.Decimal)
	for rows.Next() {
		var p copytrade.Position
		var ctVal, mark decimal.Decimal
		if err := rows.Scan(&p.InstID, &p.Side, &p.Size, &p.AvgPrice, &p.Leverage, &p.MarginMode, &p.Margin, &ctVal, &mark); err != nil {
			rows.Close()
			return copytrade.Figures{}, nil, err
		}
		positions = append(positions, p)
		instruments[p.InstID] = copytrade.Instrument{ID: p.InstID, CtVal: ctVal}
		marks[p.InstID] = mark
	}
	if err := rows.Err(); err != nil {
		return copytrade.Figures{}, nil, err
	}
	return copytrade.FundFigures(fund, positions, instruments, marks), positions, nil
}
