package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
)

// Relationship statuses as the projection stores them. The workflow owns
// the state machine; these are its names for the rows.
const (
	StatusActive   = "active"
	StatusStopping = "stopping"
	StatusEnded    = "ended"
)

// Relationship is the projection of one copy relationship.
type Relationship struct {
	ID, WorkflowID, FollowerID, TraderID, Status, StopReason string
	Investment, StopLoss                                     decimal.Decimal
	StopMode                                                 copytrade.StopMode
	CopyExisting                                             bool
	TraderSeqAtFollow                                        int64
	Released                                                 *decimal.Decimal
	CreatedAt, UpdatedAt                                     time.Time
	EndedAt                                                  *time.Time
}

// Live reports whether the relationship still counts against the follow
// limits and blocks a second follow of the same trader.
func (r Relationship) Live() bool { return r.Status != StatusEnded }

// FollowParams is a follow as the workflow asks for it: the relationship's
// id and workflow id, chosen by the caller so a retry names the same
// relationship, and the follower's request.
type FollowParams struct {
	RelationshipID, WorkflowID string
	Request                    copytrade.FollowRequest
}

// FollowResult is what a follow leaves: the trader's sequence at follow
// time (events after it are the relationship's to copy), the trader's book
// then (for copying existing positions, R5), the follower's available
// balance after and the new fund's figures.
type FollowResult struct {
	TraderSeq         int64
	Book              TraderBook
	FollowerAvailable decimal.Decimal
	Figures           copytrade.Figures
}

// Follow starts a copy relationship: it checks R1 and R3, moves the
// investment from the follower's available balance into the new copy fund
// (R2) and writes the relationship row, all in one transaction. Following
// again with the same relationship id returns the first result and moves
// nothing.
//
// The trader row and the follower's available account are locked first,
// so two follows racing each other cannot both pass a limit or both spend
// the same balance.
func (s *Store) Follow(ctx context.Context, p FollowParams) (FollowResult, error) {
	req := p.Request.Normalize()
	if fe := copytrade.ValidateID("relationship_id", p.RelationshipID); fe != nil {
		return FollowResult{}, fe
	}
	if p.WorkflowID == "" {
		return FollowResult{}, fieldErr("workflow_id", "is required")
	}
	if fe := req.Validate(s.rules); fe != nil {
		return FollowResult{}, fe
	}
	var res FollowResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var lastSeq int64
		err := tx.QueryRow(ctx, `select last_seq from traders where id = $1 for update`, req.TraderID).Scan(&lastSeq)
		if noRows(err) {
			return fieldErr("trader_id", "unknown trader %q", req.TraderID)
		}
		if err != nil {
			return err
		}
		available, err := ledger.Balance(ctx, tx, ledger.Available(req.FollowerID))
		if err != nil {
			return err
		}
		// Looked up under the locks, so a retry racing its first attempt
		// finds the row rather than "already following".
		existing, err := relationship(ctx, tx, p.RelationshipID, false)
		switch {
		case err == nil:
			if existing.FollowerID != req.FollowerID || existing.TraderID != req.TraderID {
				return fieldErr("relationship_id", "%q already names follower %s following trader %s",
					p.RelationshipID, existing.FollowerID, existing.TraderID)
			}
			res, err = followResult(ctx, tx, existing)
			return err
		case !errors.Is(err, ErrUnknownRelationship):
			return err
		}
		if err := s.checkFollow(ctx, tx, req, available); err != nil {
			return err
		}
		if err := ledger.EnsureAccount(ctx, tx, ledger.Fund(p.RelationshipID), "fund", req.FollowerID, p.RelationshipID); err != nil {
			return err
		}
		move := ledger.Transfer("follow/"+p.RelationshipID, "follow", ledger.Available(req.FollowerID), ledger.Fund(p.RelationshipID), req.Investment)
		move.FollowerID, move.RelationshipID = req.FollowerID, p.RelationshipID
		if _, err := ledger.Post(ctx, tx, move); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into relationships (id, workflow_id, follower_id, trader_id, status, investment,
				copy_existing, stop_loss, stop_mode, trader_seq_at_follow)
			values ($1, $2, $3, $4, 'active', $5, $6, $7, $8, $9)`,
			p.RelationshipID, p.WorkflowID, req.FollowerID, req.TraderID, req.Investment,
			req.CopyExisting, req.StopLoss, string(req.StopMode), lastSeq); err != nil {
			return err
		}
		if err := recordInvestmentChange(ctx, tx, p.RelationshipID, "follow/"+p.RelationshipID, "follow", req.Investment, req.Investment); err != nil {
			return err
		}
		created, err := relationship(ctx, tx, p.RelationshipID, false)
		if err != nil {
			return err
		}
		res, err = followResult(ctx, tx, created)
		return err
	})
	if err != nil {
		return FollowResult{}, fail(err, "follow %s", p.RelationshipID)
	}
	return res, nil
}

// checkFollow applies R2 and R3's refusals that need the database. The
// caller holds the trader and follower locks.
func (s *Store) checkFollow(ctx context.Context, tx pgx.Tx, req copytrade.FollowRequest, available decimal.Decimal) error {
	var liveID string
	err := tx.QueryRow(ctx, `select id from relationships where follower_id = $1 and trader_id = $2 and status <> 'ended'`,
		req.FollowerID, req.TraderID).Scan(&liveID)
	if err == nil {
		return fieldErr("trader_id", "already following trader %s (relationship %s); unfollow first to follow again", req.TraderID, liveID)
	}
	if !noRows(err) {
		return err
	}
	if max := s.rules.MaxFollowersPerTrader; max > 0 {
		var n int
		if err := tx.QueryRow(ctx, `select count(*) from relationships where trader_id = $1 and status <> 'ended'`, req.TraderID).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return fieldErr("trader_id", "trader %s already has %d followers, the most a trader can have", req.TraderID, n)
		}
	}
	if max := s.rules.MaxTradersPerFollower; max > 0 {
		var n int
		if err := tx.QueryRow(ctx, `select count(*) from relationships where follower_id = $1 and status <> 'ended'`, req.FollowerID).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return fieldErr("follower_id", "follower %s already follows %d traders, the most a follower can follow", req.FollowerID, n)
		}
	}
	if available.LessThan(req.Investment) {
		return fieldErr("investment", "available balance %s USDT is less than %s", available, req.Investment)
	}
	return nil
}

func followResult(ctx context.Context, q querier, r Relationship) (FollowResult, error) {
	res := FollowResult{TraderSeq: r.TraderSeqAtFollow}
	var err error
	if res.Book, err = traderBook(ctx, q, r.TraderID); err != nil {
		return FollowResult{}, err
	}
	if res.FollowerAvailable, err = accountBalance(ctx, q, ledger.Available(r.FollowerID)); err != nil {
		return FollowResult{}, err
	}
	res.Figures, _, err = figures(ctx, q, r.ID)
	return res, err
}

func recordInvestmentChange(ctx context.Context, tx pgx.Tx, relID, key, kind string, amount, after decimal.Decimal) error {
	_, err := tx.Exec(ctx, `insert into investment_changes (relationship_id, idempotency_key, kind, amount, investment_after)
		values ($1, $2, $3, $4, $5)`, relID, key, kind, amount, after)
	return err
}

// ChangeInvestment raises (delta > 0) or lowers (delta < 0) a
// relationship's investment (R18) and returns the fund's figures after.
// A raise takes from the follower's available balance; a lower gives back
// at most the fund's available amount (equity less the margin its
// positions use) and, while the relationship is active, not below the
// minimum investment. key makes it idempotent: a replay moves nothing and
// returns the current figures.
func (s *Store) ChangeInvestment(ctx context.Context, relID, key string, delta decimal.Decimal) (copytrade.Figures, error) {
	if key == "" {
		return copytrade.Figures{}, fieldErr("key", "is required: a change without an idempotency key could be applied twice")
	}
	if delta.IsZero() {
		return copytrade.Figures{}, fieldErr("amount", "must not be zero")
	}
	if fe := copytrade.ValidateAmount("amount", delta.Abs()); fe != nil {
		return copytrade.Figures{}, fe
	}
	ledgerKey := "invest/" + key
	var out copytrade.Figures
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The relationship row first, then fund, then available: the same
		// order as Release, so the two cannot deadlock.
		r, err := relationship(ctx, tx, relID, true)
		if err != nil {
			return err
		}
		var replayOf string
		err = tx.QueryRow(ctx, `select relationship_id from investment_changes where idempotency_key = $1`, ledgerKey).Scan(&replayOf)
		if err == nil {
			if replayOf != relID {
				return fieldErr("key", "%q was already used for relationship %s", key, replayOf)
			}
			out, _, err = figures(ctx, tx, relID)
			return err
		}
		if !noRows(err) {
			return err
		}
		if r.Status == StatusEnded {
			return fieldErr("relationship_id", "relationship %s has ended", relID)
		}
		if _, err := ledger.Balance(ctx, tx, ledger.Fund(relID)); err != nil {
			return err
		}
		available, err := ledger.Balance(ctx, tx, ledger.Available(r.FollowerID))
		if err != nil {
			return err
		}
		before, _, err := figures(ctx, tx, relID)
		if err != nil {
			return err
		}
		amount := delta.Abs()
		after := r.Investment.Add(delta)
		var move ledger.Move
		var kind string
		if delta.IsPositive() {
			if available.LessThan(amount) {
				return fieldErr("amount", "available balance %s USDT is less than %s", available, amount)
			}
			kind = "raise"
			move = ledger.Transfer(ledgerKey, kind, ledger.Available(r.FollowerID), ledger.Fund(relID), amount)
		} else {
			if amount.GreaterThan(before.Available) {
				return fieldErr("amount", "can lower by at most %s USDT, the copy fund's available amount", decimal.Max(before.Available, decimal.Zero))
			}
			if r.Status == StatusActive && after.LessThan(s.rules.MinInvestment) {
				return fieldErr("amount", "would leave an investment of %s USDT, below the minimum %s", after, s.rules.MinInvestment)
			}
			if after.IsNegative() {
				return fieldErr("amount", "would leave a negative investment of %s USDT", after)
			}
			kind = "lower"
			move = ledger.Transfer(ledgerKey, kind, ledger.Fund(relID), ledger.Available(r.FollowerID), amount)
		}
		move.FollowerID, move.RelationshipID = r.FollowerID, relID
		if _, err := ledger.Post(ctx, tx, move); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `update relationships set investment = $2, updated_at = now() where id = $1`, relID, after); err != nil {
			return err
		}
		if err := recordInvestmentChange(ctx, tx, relID, ledgerKey, kind, amount, after); err != nil {
			return err
		}
		out, _, err = figures(ctx, tx, relID)
		return err
	})
	if err != nil {
		return copytrade.Figures{}, fail(err, "change investment of %s by %s", relID, delta)
	}
	return out, nil
}

// SetStopLoss sets a relationship's stop-loss amount (zero: none) and what
// happens to its positions on stop; an empty mode keeps the current one.
func (s *Store) SetStopLoss(ctx context.Context, relID string, stopLoss decimal.Decimal, mode copytrade.StopMode) error {
	if fe := copytrade.ValidateStopLoss(stopLoss); fe != nil {
		return fe
	}
	if mode != "" && !mode.Valid() {
		return fieldErr("stop_mode", "must be market_close, copy_close or manual_close, got %q", mode)
	}
	tag, err := s.pool.Exec(ctx, `update relationships set stop_loss = $2, stop_mode = coalesce(nullif($3, ''), stop_mode),
		updated_at = now() where id = $1`, relID, stopLoss, string(mode))
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrUnknownRelationship
	}
	return fail(err, "set stop loss of %s", relID)
}

// SetStatus moves a relationship to status, with the reason it stopped
// (kept when reason is empty). Ended is final: a relationship that ended
// cannot come back, since another may have taken its (follower, trader)
// place.
func (s *Store) SetStatus(ctx context.Context, relID, status, reason string) error {
	switch status {
	case StatusActive, StatusStopping, StatusEnded:
	default:
		return fieldErr("status", "must be active, stopping or ended, got %q", status)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := relationship(ctx, tx, relID, true)
		if err != nil {
			return err
		}
		if r.Status == StatusEnded {
			if status == StatusEnded {
				return nil
			}
			return fieldErr("status", "relationship %s has ended and cannot become %s", relID, status)
		}
		_, err = tx.Exec(ctx, `update relationships set status = $2, stop_reason = coalesce(nullif($3, ''), stop_reason),
			updated_at = now(), ended_at = case when $2 = 'ended' then coalesce(ended_at, now()) else ended_at end
			where id = $1`, relID, status, reason)
		return err
	})
	return fail(err, "set status of %s to %s", relID, status)
}

// Release ends a relationship whose positions are all gone: the whole copy
// fund goes back to the follower's available balance (R19) and the
// relationship is marked ended. Releasing again returns the amount first
// released and moves nothing (R22); first says whether this call moved it,
// so a retried caller can count the release once.
func (s *Store) Release(ctx context.Context, relID string) (released decimal.Decimal, first bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := relationship(ctx, tx, relID, true)
		if err != nil {
			return err
		}
		if r.Released != nil {
			released = *r.Released
			return nil
		}
		var open int
		if err := tx.QueryRow(ctx, `select count(*) from positions where relationship_id = $1 and size > 0`, relID).Scan(&open); err != nil {
			return err
		}
		if open > 0 {
			return ErrPositionsOpen
		}
		balance, err := ledger.Balance(ctx, tx, ledger.Fund(relID))
		if err != nil {
			return err
		}
		if err := ledger.EnsureAccount(ctx, tx, ledger.Available(r.FollowerID), "available", r.FollowerID, ""); err != nil {
			return err
		}
		move := ledger.Transfer("release/"+relID, "release", ledger.Fund(relID), ledger.Available(r.FollowerID), balance)
		move.FollowerID, move.RelationshipID = r.FollowerID, relID
		if _, err := ledger.Post(ctx, tx, move); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `update relationships set status = 'ended', released = $2, investment = 0,
			updated_at = now(), ended_at = coalesce(ended_at, now()) where id = $1`, relID, balance); err != nil {
			return err
		}
		released, first = balance, true
		return recordInvestmentChange(ctx, tx, relID, "release/"+relID, "release", balance, decimal.Zero)
	})
	if err != nil {
		return decimal.Zero, false, fail(err, "release %s", relID)
	}
	return released, first, nil
}

const relationshipColumns = `id, workflow_id, follower_id, trader_id, status, stop_reason, investment, stop_loss,
	stop_mode, copy_existing, trader_seq_at_follow, released, created_at, updated_at, ended_at`

func scanRelationship(row pgx.CollectableRow) (Relationship, error) {
	var r Relationship
	err := row.Scan(&r.ID, &r.WorkflowID, &r.FollowerID, &r.TraderID, &r.Status, &r.StopReason, &r.Investment, &r.StopLoss,
		&r.StopMode, &r.CopyExisting, &r.TraderSeqAtFollow, &r.Released, &r.CreatedAt, &r.UpdatedAt, &r.EndedAt)
	return r, err
}

// relationship reads one relationship, locking its row when lock is set;
// ErrUnknownRelationship when there is none.
func relationship(ctx context.Context, q querier, relID string, lock bool) (Relationship, error) {
	sql := `select ` + relationshipColumns + ` from relationships where id = $1`
	if lock {
		sql += ` for update`
	}
	rows, err := q.Query(ctx, sql, relID)
	if err != nil {
		return Relationship{}, err
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRelationship)
	if noRows(err) {
		return Relationship{}, ErrUnknownRelationship
	}
	return r, err
}

// Relationship reads one relationship; ErrUnknownRelationship if none.
func (s *Store) Relationship(ctx context.Context, relID string) (Relationship, error) {
	r, err := relationship(ctx, s.pool, relID, false)
	return r, fail(err, "relationship %s", relID)
}

// LiveRelationship is the follower's relationship with the trader that has
// not ended; ErrUnknownRelationship if none.
func (s *Store) LiveRelationship(ctx context.Context, followerID, traderID string) (Relationship, error) {
	rows, err := s.pool.Query(ctx, `select `+relationshipColumns+` from relationships
		where follower_id = $1 and trader_id = $2 and status <> 'ended'`, followerID, traderID)
	if err != nil {
		return Relationship{}, fail(err, "live relationship of %s with %s", followerID, traderID)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRelationship)
	if noRows(err) {
		err = ErrUnknownRelationship
	}
	return r, fail(err, "live relationship of %s with %s", followerID, traderID)
}

// RelationshipFilter selects relationships; empty fields match all.
type RelationshipFilter struct {
	TraderID, FollowerID string
	// LiveOnly leaves out ended relationships.
	LiveOnly bool
}

// Relationships lists relationships matching f, oldest first.
func (s *Store) Relationships(ctx context.Context, f RelationshipFilter) ([]Relationship, error) {
	rows, err := s.pool.Query(ctx, `select `+relationshipColumns+` from relationships
		where ($1 = '' or trader_id = $1) and ($2 = '' or follower_id = $2) and (not $3 or status <> 'ended')
		order by created_at, id`, f.TraderID, f.FollowerID, f.LiveOnly)
	if err != nil {
		return nil, fail(err, "list relationships")
	}
	out, err := pgx.CollectRows(rows, scanRelationship)
	return out, fail(err, "list relationships")
}

// LiveFollowers are the relationships a trader event fans out to: active
// or stopping (a copy_close stop still follows the trader's closes),
// oldest first.
func (s *Store) LiveFollowers(ctx context.Context, traderID string) ([]Relationship, error) {
	rows, err := s.pool.Query(ctx, `select `+relationshipColumns+` from relationships
		where trader_id = $1 and status in ('active', 'stopping') order by created_at, id`, traderID)
	if err != nil {
		return nil, fail(err, "live followers of %s", traderID)
	}
	out, err := pgx.CollectRows(rows, scanRelationship)
	return out, fail(err, "live followers of %s", traderID)
}
