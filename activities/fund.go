package activities

import (
	"context"
	"fmt"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/log"

	"smartcopy/copytrade"
	"smartcopy/venue"
)

// SyncInput copies a trader's leverage or margin change (R15, R16). Key is
// unique per attempt: a sync that failed for lack of funds is tried again
// under a new key when the follower adds funds.
type SyncInput struct {
	Rel   RelRef                `json:"rel"`
	Event copytrade.TraderEvent `json:"event"`
	Key   string                `json:"key"`
}

// SyncOutcome is the venue's answer and the fund after it.
type SyncOutcome struct {
	Result venue.SyncResult `json:"result"`
	// Delta is the follower's margin change asked for (margin syncs).
	Delta decimal.Decimal `json:"delta,omitzero"`
	Fund  Fund            `json:"fund"`
}

// SyncLeverage sets the relationship's position on the event's (instrument,
// side) to the trader's new leverage (R15).
func (a *Activities) SyncLeverage(ctx context.Context, in SyncInput) (SyncOutcome, error) {
	res, err := a.Venue.SetLeverage(ctx, venue.LeverageRequest{
		Key:            in.Key,
		RelationshipID: in.Rel.RelationshipID,
		TraderEventID:  in.Event.EventID,
		InstID:         in.Event.InstID,
		Side:           in.Event.Side,
		Leverage:       in.Event.Leverage,
	})
	if err != nil {
		return SyncOutcome{}, fmt.Errorf("set leverage %s: %w", in.Key, err)
	}
	syncLogger(ctx, in).Info("leverage sync", "leverage", in.Event.Leverage.String(),
		"status", res.Status, "reason", res.Reason)
	out := SyncOutcome{Result: res}
	out.Fund, err = a.fund(ctx, in.Rel.RelationshipID)
	return out, err
}

// SyncMargin adds or removes margin on the relationship's isolated position
// in the trader's proportion (R16): follower delta = trader delta x follower
// margin / trader margin before.
func (a *Activities) SyncMargin(ctx context.Context, in SyncInput) (SyncOutcome, error) {
	pos, ok, err := a.position(ctx, in.Rel.RelationshipID, in.Event.Key())
	if err != nil {
		return SyncOutcome{}, err
	}
	var out SyncOutcome
	if ok {
		out.Delta = copytrade.ProportionalMarginDelta(in.Event.MarginDelta, pos.Margin, in.Event.MarginBefore)
	}
	if out.Delta.IsZero() {
		out.Result = venue.SyncResult{Status: venue.SyncSkipped, Reason: copytrade.ReasonNoPosition,
			Detail: "no position on " + in.Event.Key().String() + " to adjust"}
		out.Fund, err = a.fund(ctx, in.Rel.RelationshipID)
		return out, err
	}
	out.Result, err = a.Venue.AdjustMargin(ctx, venue.MarginRequest{
		Key:            in.Key,
		RelationshipID: in.Rel.RelationshipID,
		TraderEventID:  in.Event.EventID,
		InstID:         in.Event.InstID,
		Side:           in.Event.Side,
		Delta:          out.Delta,
	})
	if err != nil {
		return SyncOutcome{}, fmt.Errorf("adjust margin %s: %w", in.Key, err)
	}
	syncLogger(ctx, in).Info("margin sync", "delta", out.Delta.String(),
		"status", out.Result.Status, "reason", out.Result.Reason)
	out.Fund, err = a.fund(ctx, in.Rel.RelationshipID)
	return out, err
}

// syncLogger names the relationship, the trader event and the sync's key
// (the client order id of a sync).
func syncLogger(ctx context.Context, in SyncInput) log.Logger {
	return orderLogger(ctx, in.Rel.RelationshipID, in.Event.EventID, in.Key)
}

// InvestmentInput raises (positive Delta) or lowers (negative) the
// investment (R18). Key is unique per change of this relationship.
type InvestmentInput struct {
	Rel   RelRef          `json:"rel"`
	Key   string          `json:"key"`
	Delta decimal.Decimal `json:"delta"`
}

// ChangeInvestment moves money between the follower's available balance and
// the copy fund (R18). Refusals (balance short, below the minimum, more than
// the fund's available amount) are non-retryable and move nothing.
func (a *Activities) ChangeInvestment(ctx context.Context, in InvestmentInput) (Fund, error) {
	if _, err := a.Store.ChangeInvestment(ctx, in.Rel.RelationshipID, in.Key, in.Delta); err != nil {
		return Fund{}, storeErr(err)
	}
	logger(ctx, logRelationship, in.Rel.RelationshipID, "key", in.Key).Info("investment changed", "delta", in.Delta.String())
	return a.fund(ctx, in.Rel.RelationshipID)
}

// StopLossInput records new stop-loss settings in the projection.
type StopLossInput struct {
	RelationshipID string             `json:"relationship_id"`
	StopLoss       decimal.Decimal    `json:"stop_loss"`
	StopMode       copytrade.StopMode `json:"stop_mode"`
}

// SetStopLoss records the stop loss where the risk sweep reads it (R21) and
// returns the fund so the workflow can test it at once.
func (a *Activities) SetStopLoss(ctx context.Context, in StopLossInput) (Fund, error) {
	if err := a.Store.SetStopLoss(ctx, in.RelationshipID, in.StopLoss, in.StopMode); err != nil {
		return Fund{}, storeErr(err)
	}
	return a.fund(ctx, in.RelationshipID)
}

// StatusInput records a relationship's status in the projection.
type StatusInput struct {
	RelationshipID string `json:"relationship_id"`
	Status         string `json:"status"`
	Reason         string `json:"reason,omitempty"`
}

// SetStatus records a status change in the projection, so limits, fan-out
// and the CLI see it. A change the store refuses (an ended relationship
// cannot come back) is a non-retryable refusal: retrying cannot fix it.
func (a *Activities) SetStatus(ctx context.Context, in StatusInput) error {
	return storeErr(a.Store.SetStatus(ctx, in.RelationshipID, in.Status, in.Reason))
}

// ReadFund returns the fund figures at the latest mark prices, for the
// stop-loss test on a price move (R20, R21).
func (a *Activities) ReadFund(ctx context.Context, relationshipID string) (Fund, error) {
	return a.fund(ctx, relationshipID)
}

// HandOver moves every position to the follower's own account (stop setting
// manual_close, R1).
func (a *Activities) HandOver(ctx context.Context, rel RelRef) (Fund, error) {
	if _, err := a.Venue.HandOver(ctx, venue.HandOverRequest{
		Key: "handover/" + rel.RelationshipID, RelationshipID: rel.RelationshipID, FollowerID: rel.FollowerID,
	}); err != nil {
		return Fund{}, fmt.Errorf("hand over %s: %w", rel.RelationshipID, err)
	}
	logger(ctx, logRelationship, rel.RelationshipID).Info("positions handed over to the follower's account")
	return a.fund(ctx, rel.RelationshipID)
}

// Release moves what is left in the copy fund to the follower's available
// balance and ends the relationship in the projection (R19). It is
// idempotent: a second call returns the first amount, and only the call
// that moved the money counts it.
func (a *Activities) Release(ctx context.Context, rel RelRef) (decimal.Decimal, error) {
	released, first, err := a.Store.Release(ctx, rel.RelationshipID)
	if err != nil {
		return decimal.Zero, storeErr(err)
	}
	if first {
		logger(ctx, logRelationship, rel.RelationshipID).Info("copy fund released", "amount", released.String())
		if a.Metrics != nil {
			a.Metrics.FundsReleased(released.InexactFloat64())
		}
	}
	return released, nil
}

// TraderEventsInput asks for a trader's recorded events after a sequence
// number.
type TraderEventsInput struct {
	TraderID string `json:"trader_id"`
	AfterSeq int64  `json:"after_seq"`
	Limit    int    `json:"limit"`
}

// TraderEvents reads the trader's recorded events after AfterSeq: how a
// relationship fills a gap in its signals, or catches up after holding
// back more events than it keeps in its state.
func (a *Activities) TraderEvents(ctx context.Context, in TraderEventsInput) ([]copytrade.TraderEvent, error) {
	return a.Store.TraderEventsAfter(ctx, in.TraderID, in.AfterSeq, in.Limit)
}
