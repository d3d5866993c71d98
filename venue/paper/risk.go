package paper

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/venue"
)

// Kinds of risk_syncs rows.
const (
	syncLeverage = "leverage"
	syncMargin   = "margin"
)

// SetLeverage sets the leverage of a relationship's position on
// (instrument, side) to the trader's (R15). The margin becomes the
// position's notional at its average open price over the new leverage: a
// lower leverage takes the difference from the fund's available amount, a
// higher one releases it. When the fund cannot cover it the sync fails with
// reason insufficient_funds and the Shortfall, and the position is left as
// it was; the workflow tries again, under a new key, once funds are added.
// A leverage above the instrument's maximum or not positive fails with
// leverage_above_max or invalid_leverage; the position's current leverage,
// or no position held, is skipped.
//
// It applies to cross and isolated positions alike. On a real exchange a
// cross position's margin is the account's, but the paper venue models
// margin per position in both modes (R17: used = sum of position margins),
// so a cross position's margin must follow its leverage too or the fund's
// available amount would be wrong after the change.
//
// Idempotent by req.Key: a repeated key returns the first result.
func (v *Venue) SetLeverage(ctx context.Context, req venue.LeverageRequest) (venue.SyncResult, error) {
	if err := checkSync(req.Key, req.RelationshipID, req.InstID, req.Side); err != nil {
		return venue.SyncResult{}, fmt.Errorf("paper: set leverage %s: %w", req.Key, err)
	}
	s := syncRow{Key: req.Key, RelationshipID: req.RelationshipID, TraderEventID: req.TraderEventID,
		Kind: syncLeverage, InstID: req.InstID, Side: req.Side}
	res, err := v.sync(ctx, s, func(f fund, inst copytrade.Instrument, before copytrade.Position) decision {
		d := decision{Before: before, Asked: before}
		d.Asked.Leverage = req.Leverage
		switch lev := req.Leverage; {
		case !lev.IsPositive():
			return d.fail(copytrade.ReasonInvalidLeverage)
		case lev.GreaterThan(inst.MaxLeverage):
			return d.fail(copytrade.ReasonLeverageAboveMax)
		case lev.Equal(before.Leverage):
			d.Asked = before
			d.Status = venue.SyncSkipped
			return d
		}
		d.Asked.Margin = copytrade.LeverageMargin(inst, before, req.Leverage)
		if d.Asked.Margin.Sub(before.Margin).GreaterThan(f.Available()) {
			return d.fail(copytrade.ReasonInsufficientFunds)
		}
		d.Status = venue.SyncApplied
		return d
	})
	if err != nil {
		return venue.SyncResult{}, fmt.Errorf("paper: set leverage %s: %w", req.Key, err)
	}
	return res, nil
}

// AdjustMargin adds (positive Delta) or removes (negative) margin on a
// relationship's isolated position (R16). A cross position is skipped
// (reason margin_mode_mismatch): its margin follows its leverage only. An
// addition the fund cannot cover fails with insufficient_funds and the
// Shortfall; a removal that would leave the margin at or below zero
// (margin_below_zero) or below the maintenance margin
// (margin_below_maintenance) fails. A failed change changes nothing.
//
// Idempotent by req.Key: a repeated key returns the first result.
func (v *Venue) AdjustMargin(ctx context.Context, req venue.MarginRequest) (venue.SyncResult, error) {
	if err := checkSync(req.Key, req.RelationshipID, req.InstID, req.Side); err != nil {
		return venue.SyncResult{}, fmt.Errorf("paper: adjust margin %s: %w", req.Key, err)
	}
	s := syncRow{Key: req.Key, RelationshipID: req.RelationshipID, TraderEventID: req.TraderEventID,
		Kind: syncMargin, InstID: req.InstID, Side: req.Side}
	res, err := v.sync(ctx, s, func(f fund, inst copytrade.Instrument, before copytrade.Position) decision {
		d := decision{Before: before, Asked: before}
		if before.MarginMode != copytrade.Isolated {
			d.Status, d.Reason = venue.SyncSkipped, copytrade.ReasonMarginModeMismatch
			return d
		}
		if req.Delta.IsZero() {
			d.Status = venue.SyncSkipped
			return d
		}
		d.Asked.Margin = before.Margin.Add(req.Delta)
		switch {
		case req.Delta.IsPositive() && req.Delta.GreaterThan(f.Available()):
			return d.fail(copytrade.ReasonInsufficientFunds)
		case !d.Asked.Margin.IsPositive():
			return d.fail(copytrade.ReasonMarginBelowZero)
		case req.Delta.IsNegative() && d.Asked.Margin.LessThan(maintenanceMargin(inst, before)):
			return d.fail(copytrade.ReasonMarginBelowMaintenance)
		}
		d.Status = venue.SyncApplied
		return d
	})
	if err != nil {
		return venue.SyncResult{}, fmt.Errorf("paper: adjust margin %s: %w", req.Key, err)
	}
	return res, nil
}

// maintenanceMargin is the margin below which the position would be
// liquidated: its notional at the average open price times the
// instrument's maintenance margin rate, rounded up like every requirement.
func maintenanceMargin(inst copytrade.Instrument, p copytrade.Position) decimal.Decimal {
	return copytrade.RoundFeeUp(copytrade.Notional(inst, p.Size, p.AvgPrice).Mul(inst.MaintMarginRate))
}

func checkSync(key, relID, instID string, side copytrade.Side) error {
	for _, f := range []struct{ name, value string }{{"key", key}, {"relationship_id", relID}, {"inst_id", instID}} {
		if err := required(f.name, f.value); err != nil {
			return err
		}
	}
	return validSide(side)
}

// decision is what a sync decided about a held position: the position
// before, and the leverage and margin it asked for (recorded even when the
// change failed, so the follower sees what was needed, R26).
type decision struct {
	Status venue.SyncStatus
	Reason string
	Before copytrade.Position
	Asked  copytrade.Position
}

func (d decision) fail(reason string) decision {
	d.Status, d.Reason = venue.SyncFailed, reason
	return d
}

// result is the decision as the venue reports it. The same function turns
// a fresh decision and a recorded one into a result, so a replay reads as
// the first answer did; only the Shortfall of a replayed failure is
// measured against the fund as it is now, because risk_syncs does not keep
// it.
func (d decision) result(kind string, f fund, inst copytrade.Instrument) venue.SyncResult {
	res := venue.SyncResult{Status: d.Status, Reason: d.Reason, Before: d.Before, Position: d.Before}
	if d.Status == venue.SyncApplied {
		res.Position = d.Asked
	}
	if d.Status == venue.SyncFailed && d.Reason == copytrade.ReasonInsufficientFunds {
		res.Shortfall = f.shortfall(d.Asked.Margin.Sub(d.Before.Margin))
	}
	res.Detail = d.describe(kind, inst)
	return res
}

// describe is the sentence for the follower (R23's notification body).
func (d decision) describe(kind string, inst copytrade.Instrument) string {
	b, a := d.Before, d.Asked
	where := fmt.Sprintf("%s %s", b.InstID, b.Side)
	switch d.Reason {
	case copytrade.ReasonNoPosition:
		return fmt.Sprintf("no %s position on %s", b.Side, b.InstID)
	case copytrade.ReasonMarginModeMismatch:
		return fmt.Sprintf("the %s position is %s margin; only isolated margin is adjusted", where, b.MarginMode)
	case copytrade.ReasonInvalidLeverage:
		return fmt.Sprintf("leverage %s is not positive", a.Leverage)
	case copytrade.ReasonLeverageAboveMax:
		return fmt.Sprintf("leverage %sx is above %s's maximum %sx", a.Leverage, inst.ID, inst.MaxLeverage)
	case copytrade.ReasonInsufficientFunds:
		if kind == syncLeverage {
			return fmt.Sprintf("changing %s to %sx needs %s USDT more margin than the copy fund has available",
				where, a.Leverage, a.Margin.Sub(b.Margin))
		}
		return fmt.Sprintf("adding %s USDT margin to %s needs more than the copy fund has available", a.Margin.Sub(b.Margin), where)
	case copytrade.ReasonMarginBelowZero:
		return fmt.Sprintf("removing %s USDT from %s would leave %s USDT margin", b.Margin.Sub(a.Margin), where, a.Margin)
	case copytrade.ReasonMarginBelowMaintenance:
		return fmt.Sprintf("removing %s USDT from %s would leave %s USDT margin, below its maintenance margin %s",
			b.Margin.Sub(a.Margin), where, a.Margin, maintenanceMargin(inst, b))
	}
	switch {
	case d.Status == venue.SyncSkipped && kind == syncLeverage:
		return fmt.Sprintf("the %s position is already at %sx", where, b.Leverage)
	case d.Status == venue.SyncSkipped:
		return "no margin to add or remove"
	case kind == syncLeverage:
		return fmt.Sprintf("%s leverage %sx -> %sx, margin %s -> %s USDT", where, b.Leverage, a.Leverage, b.Margin, a.Margin)
	default:
		return fmt.Sprintf("%s margin %s -> %s USDT", where, b.Margin, a.Margin)
	}
}

// syncRow names a risk_syncs row.
type syncRow struct {
	Key            string
	RelationshipID string
	TraderEventID  string
	Kind           string
	InstID         string
	Side           copytrade.Side
}

// decideFunc decides a sync on a held position under the fund and position
// locks. It changes nothing; sync applies an applied decision.
type decideFunc func(f fund, inst copytrade.Instrument, before copytrade.Position) decision

// sync runs what SetLeverage and AdjustMargin share: the replay of a known
// key, the locks, the skip when nothing is held, applying the change, and
// the risk_syncs record, all in one transaction.
func (v *Venue) sync(ctx context.Context, s syncRow, decide decideFunc) (venue.SyncResult, error) {
	var res venue.SyncResult
	err := pgx.BeginFunc(ctx, v.pool, func(tx pgx.Tx) error {
		f, err := lockFund(ctx, tx, s.RelationshipID)
		if err != nil {
			return err
		}
		if prev, ok, err := v.readSync(ctx, tx, s, f); err != nil || ok {
			res = prev
			return err
		}
		empty := copytrade.Position{InstID: s.InstID, Side: s.Side}
		d := decision{Status: venue.SyncSkipped, Reason: copytrade.ReasonNoPosition, Before: empty, Asked: empty}
		var inst copytrade.Instrument
		pos, held, err := lockPosition(ctx, tx, s.RelationshipID, s.InstID, s.Side)
		if err != nil {
			return err
		}
		if held {
			// Positions reference instruments: a held position's
			// instrument is listed.
			var ok bool
			if inst, ok, err = v.instrument(ctx, tx, s.InstID); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("position on unlisted instrument %s", s.InstID)
			}
			d = decide(f, inst, pos.Position)
		}
		if d.Status == venue.SyncApplied {
			if _, err := tx.Exec(ctx, `update positions set leverage = $4, margin = $5, updated_at = now()
				where relationship_id = $1 and inst_id = $2 and side = $3`,
				s.RelationshipID, s.InstID, string(s.Side), d.Asked.Leverage, d.Asked.Margin); err != nil {
				return fmt.Errorf("set leverage and margin: %w", err)
			}
		}
		res = d.result(s.Kind, f, inst)
		inserted, err := insertSync(ctx, tx, s, d)
		if err != nil || inserted {
			return err
		}
		// Taken by a concurrent request with the same key: possible only
		// for a relationship without a fund row to lock, which holds
		// nothing, so nothing was changed here. Its result is the result.
		prev, _, err := v.readSync(ctx, tx, s, f)
		res = prev
		return err
	})
	return res, err
}

func insertSync(ctx context.Context, tx pgx.Tx, s syncRow, d decision) (bool, error) {
	// No position: nothing before and nothing asked.
	var levBefore, levAfter, marginBefore, marginAfter any
	if d.Before.Size.IsPositive() {
		levBefore, marginBefore = d.Before.Leverage, d.Before.Margin
		levAfter, marginAfter = d.Asked.Leverage, d.Asked.Margin
	}
	tag, err := tx.Exec(ctx, `insert into risk_syncs (idempotency_key, relationship_id, trader_event_id, kind, inst_id,
			side, status, reason, leverage_before, leverage_after, margin_before, margin_after)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		on conflict (idempotency_key) do nothing`,
		s.Key, s.RelationshipID, s.TraderEventID, s.Kind, s.InstID, string(s.Side), string(d.Status), d.Reason,
		levBefore, levAfter, marginBefore, marginAfter)
	if err != nil {
		return false, fmt.Errorf("record %s sync: %w", s.Kind, err)
	}
	return tag.RowsAffected() == 1, nil
}

// readSync returns the recorded result of s.Key, if any. The position's
// size, average price and margin mode are as they are now; leverage and
// margin before and after are as recorded.
func (v *Venue) readSync(ctx context.Context, q querier, s syncRow, f fund) (venue.SyncResult, bool, error) {
	rec := syncRow{Key: s.Key}
	var status, reason string
	var levBefore, levAfter, marginBefore, marginAfter decimal.NullDecimal
	err := q.QueryRow(ctx, `select relationship_id, kind, inst_id, side, status, reason,
			leverage_before, leverage_after, margin_before, margin_after
		from risk_syncs where idempotency_key = $1`, s.Key).Scan(&rec.RelationshipID, &rec.Kind, &rec.InstID, &rec.Side,
		&status, &reason, &levBefore, &levAfter, &marginBefore, &marginAfter)
	if errors.Is(err, pgx.ErrNoRows) {
		return venue.SyncResult{}, false, nil
	}
	if err != nil {
		return venue.SyncResult{}, false, fmt.Errorf("read sync: %w", err)
	}
	now, err := currentPosition(ctx, q, rec.RelationshipID, rec.InstID, rec.Side)
	if err != nil {
		return venue.SyncResult{}, false, err
	}
	d := decision{Status: venue.SyncStatus(status), Reason: reason, Before: now, Asked: now}
	if levBefore.Valid {
		d.Before.Leverage, d.Before.Margin = levBefore.Decimal, marginBefore.Decimal
		d.Asked.Leverage, d.Asked.Margin = levAfter.Decimal, marginAfter.Decimal
	} else {
		// Nothing was held then, whatever is held now.
		d.Before = copytrade.Position{InstID: rec.InstID, Side: rec.Side}
		d.Asked = d.Before
	}
	inst, _, err := v.instrument(ctx, q, rec.InstID)
	if err != nil {
		return venue.SyncResult{}, false, err
	}
	return d.result(rec.Kind, f, inst), true, nil
}
