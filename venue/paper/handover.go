package paper

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/venue"
)

// HandOverKey is the ledger idempotency key of a relationship's hand over.
// A relationship hands its positions over at most once, when it stops with
// manual_close, so the key is the relationship's, whatever req.Key says.
func HandOverKey(relationshipID string) string { return "handover/" + relationshipID }

// HandOver moves every position of a relationship to the follower's own
// account (stop setting manual_close, R1): each becomes a manual_positions
// row, leaves a position_history row with outcome handed_over and no close
// price, and its margin moves from the copy fund to the follower's manual
// account (ledger kind "handover"). The rest of the fund stays for the
// release (R19).
//
// It returns the positions handed over, ordered by instrument and side. A
// repeated hand over changes nothing and returns the same list.
func (v *Venue) HandOver(ctx context.Context, req venue.HandOverRequest) ([]copytrade.Position, error) {
	if err := required("relationship_id", req.RelationshipID); err != nil {
		return nil, fmt.Errorf("paper: hand over %s: %w", req.RelationshipID, err)
	}
	if err := required("follower_id", req.FollowerID); err != nil {
		return nil, fmt.Errorf("paper: hand over %s: %w", req.RelationshipID, err)
	}
	var out []copytrade.Position
	err := pgx.BeginFunc(ctx, v.pool, func(tx pgx.Tx) error {
		var err error
		out, err = handOver(ctx, tx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("paper: hand over %s: %w", req.RelationshipID, err)
	}
	return out, nil
}

func handOver(ctx context.Context, tx pgx.Tx, req venue.HandOverRequest) ([]copytrade.Position, error) {
	rel, key := req.RelationshipID, HandOverKey(req.RelationshipID)
	fundAcct := ledger.Fund(rel)
	// The fund row is the relationship's lock (see the package comment);
	// create it if the relationship never got money so there is one.
	if err := ledger.EnsureAccount(ctx, tx, fundAcct, "fund", req.FollowerID, rel); err != nil {
		return nil, err
	}
	f, err := lockFund(ctx, tx, rel)
	if err != nil {
		return nil, err
	}
	var done bool
	if err := tx.QueryRow(ctx, `select exists(select 1 from ledger_transactions where idempotency_key = $1)`,
		key).Scan(&done); err != nil {
		return nil, fmt.Errorf("look up %s: %w", key, err)
	}
	if done {
		return manualPositions(ctx, tx, rel)
	}

	rows, err := tx.Query(ctx, `select `+positionColumns+` from positions
		where relationship_id = $1 order by inst_id, side for update`, rel)
	if err != nil {
		return nil, fmt.Errorf("lock positions: %w", err)
	}
	held, err := pgx.CollectRows(rows, scanPosition)
	if err != nil {
		return nil, fmt.Errorf("lock positions: %w", err)
	}
	out := []copytrade.Position{}
	margin := decimal.Zero
	for _, p := range held {
		if !p.Size.IsPositive() {
			continue
		}
		if _, err := tx.Exec(ctx, `insert into manual_positions (follower_id, from_relationship_id, inst_id, side, size,
				avg_price, leverage, margin_mode, margin)
			values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			req.FollowerID, rel, p.InstID, string(p.Side), p.Size, p.AvgPrice, p.Leverage, string(p.MarginMode),
			p.Margin); err != nil {
			return nil, fmt.Errorf("hand over %s %s: %w", p.InstID, p.Side, err)
		}
		if _, err := tx.Exec(ctx, `insert into position_history (relationship_id, inst_id, side, max_size,
				avg_open_price, avg_close_price, gross_pnl, fees, outcome, opened_at)
			values ($1, $2, $3, $4, $5, null, $6, $7, 'handed_over', $8)`,
			rel, p.InstID, string(p.Side), p.MaxSize, p.AvgPrice, p.GrossPnL, p.Fees, p.OpenedAt); err != nil {
			return nil, fmt.Errorf("record handed over %s %s: %w", p.InstID, p.Side, err)
		}
		margin = margin.Add(p.Margin)
		out = append(out, p.Position)
	}
	if _, err := tx.Exec(ctx, `delete from positions where relationship_id = $1`, rel); err != nil {
		return nil, fmt.Errorf("delete handed over positions: %w", err)
	}
	// The fund normally holds at least the margin its positions use; only
	// a loss the venue absorbed (see close) can leave it with less, and
	// then what it has is what moves.
	amount := decimal.Min(margin, f.Balance)
	manual := ledger.Manual(req.FollowerID)
	if err := ledger.EnsureAccount(ctx, tx, manual, "manual", req.FollowerID, ""); err != nil {
		return nil, err
	}
	// Posted even when nothing was held, so that the key marks the hand
	// over as done.
	if _, err := ledger.Post(ctx, tx, ledger.Move{
		Key: key, Kind: "handover", FollowerID: req.FollowerID, RelationshipID: rel,
		Memo: fmt.Sprintf("hand %d positions over to the follower's account (request %s)", len(out), req.Key),
		Postings: []ledger.Posting{
			{Account: fundAcct, Amount: amount.Neg()},
			{Account: manual, Amount: amount},
		},
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// manualPositions are the positions a relationship handed over.
func manualPositions(ctx context.Context, q querier, rel string) ([]copytrade.Position, error) {
	rows, err := q.Query(ctx, `select inst_id, side, size, avg_price, leverage, margin_mode, margin
		from manual_positions where from_relationship_id = $1 order by inst_id, side`, rel)
	if err != nil {
		return nil, fmt.Errorf("handed over positions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (copytrade.Position, error) {
		var p copytrade.Position
		err := row.Scan(&p.InstID, &p.Side, &p.Size, &p.AvgPrice, &p.Leverage, &p.MarginMode, &p.Margin)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("handed over positions: %w", err)
	}
	if out == nil {
		out = []copytrade.Position{}
	}
	return out, nil
}
