package store

import (
	"context"

	"github.com/jackc/pgx/v5"
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
	err := q.QueryRow(ctx, `select investment from relationships where id = $1`, relID).Scan(&fund.Investment)
	if noRows(err) {
		return copytrade.Figures{}, nil, ErrUnknownRelationship
	}
	if err != nil {
		return copytrade.Figures{}, nil, err
	}
	if err := q.QueryRow(ctx, `select coalesce(sum(gross_pnl), 0), coalesce(sum(fee), 0)
		from orders where relationship_id = $1 and status = 'filled'`, relID).Scan(&fund.RealizedPnL, &fund.Fees); err != nil {
		return copytrade.Figures{}, nil, err
	}
	positions, err := relationshipPositions(ctx, q, relID)
	if err != nil {
		return copytrade.Figures{}, nil, err
	}
	instruments := make(map[string]copytrade.Instrument)
	marks := make(map[string]decimal.Decimal)
	for _, p := range positions {
		if _, done := instruments[p.InstID]; done {
			continue
		}
		inst, known, err := instrument(ctx, q, p.InstID)
		if err != nil {
			return copytrade.Figures{}, nil, err
		}
		if known {
			instruments[p.InstID] = inst
		}
		var mark decimal.Decimal
		err = q.QueryRow(ctx, `select price from mark_prices where inst_id = $1`, p.InstID).Scan(&mark)
		if err != nil && !noRows(err) {
			return copytrade.Figures{}, nil, err
		}
		marks[p.InstID] = mark
	}
	return copytrade.FundFigures(fund, positions, instruments, marks), positions, nil
}

// relationshipPositions are a relationship's open positions on the venue.
func relationshipPositions(ctx context.Context, q querier, relID string) ([]copytrade.Position, error) {
	rows, err := q.Query(ctx, `select inst_id, side, size, avg_price, leverage, margin_mode, margin
		from positions where relationship_id = $1 and size > 0 order by inst_id, side`, relID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanPosition)
}
