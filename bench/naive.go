package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
	"smartcopy/copytrade"
	"smartcopy/venue"
	"smartcopy/workflows"
)

// The naive design, the first baseline: what a first cut of copy trading
// on Temporal looks like. The publisher records the event and calls
// signal-with-start once per follower; each relationship is a workflow
// that receives the signal and runs one regular activity, which sizes the
// copy and places it on the paper venue. No ordering, no de-duplication,
// no fund read-back, no status projection, no search attributes, no
// continue-as-new: only the orchestration every design needs, so that
// smartcopy / naive measures what smartcopy's own design costs or saves.

const (
	naiveWorkflowName = "BenchNaiveCopy"
	naiveActivityName = "BenchNaivePlace"
)

// naiveInput starts a naive relationship: the relationship as the store
// recorded it at follow time.
type naiveInput struct {
	Rel        activities.RelRef `json:"rel"`
	Investment decimal.Decimal   `json:"investment"`
}

type naivePlaceInput struct {
	Rel        activities.RelRef     `json:"rel"`
	Investment decimal.Decimal       `json:"investment"`
	Event      copytrade.TraderEvent `json:"event"`
}

func naiveWorkflowID(followerID, traderID string) string {
	return "bench-naive/" + followerID + "/" + traderID
}

// naiveCopy is the naive relationship workflow: one activity per signal,
// in arrival order.
func naiveCopy(ctx workflow.Context, in naiveInput) error {
	events := workflow.GetSignalChannel(ctx, workflows.SignalTraderEvent)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumInterval: 10 * time.Second},
	})
	for {
		var ev copytrade.TraderEvent
		events.Receive(ctx, &ev)
		err := workflow.ExecuteActivity(ctx, naiveActivityName, naivePlaceInput{Rel: in.Rel, Investment: in.Investment, Event: ev}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Error("naive copy failed", "event_id", ev.EventID, "error", err)
		}
	}
}

// naiveActivities place the naive design's orders on the venue.
type naiveActivities struct {
	Venue venue.Venue
}

func (a *naiveActivities) Place(ctx context.Context, in naivePlaceInput) error {
	_, err := copyEvent(ctx, a.Venue, in.Rel, in.Investment, in.Event)
	return err
}

// copyEvent is one follower's copy of one event as the baselines do it:
// read the mark price, size the open (R6, R7) or the close (R12), place
// the order on the paper venue; or set the leverage (R15). It is the same
// venue work smartcopy's CopyOpen, CopyClose and SyncLeverage do, without
// their read of the fund figures afterwards. It reports whether it wrote a
// row.
func copyEvent(ctx context.Context, v venue.Venue, rel activities.RelRef, investment decimal.Decimal, ev copytrade.TraderEvent) (bool, error) {
	req := venue.OrderRequest{
		ClientOrderID:  activities.ClientOrderID(rel.RelationshipID, ev.EventID),
		RelationshipID: rel.RelationshipID,
		FollowerID:     rel.FollowerID,
		TraderID:       rel.TraderID,
		TraderEventID:  ev.EventID,
		InstID:         ev.InstID,
		Side:           ev.Side,
	}
	switch ev.Kind {
	case copytrade.EventOpen:
		inst, err := v.Instrument(ctx, ev.InstID)
		if err != nil {
			return false, err
		}
		price, err := v.MarkPrice(ctx, ev.InstID)
		if err != nil {
			return false, err
		}
		sizing := &activities.Sizing{TraderEventID: ev.EventID, Inputs: copytrade.OpenInputs{
			TraderMargin: ev.Margin, TraderEquity: ev.Equity, Leverage: ev.Leverage,
			MarginMode: ev.MarginMode, Investment: investment, Price: price,
		}}
		plan, rej := copytrade.PlanOpen(inst, sizing.Inputs)
		if rej != nil {
			return false, temporal.NewNonRetryableApplicationError(rej.Reason, "Refused", nil)
		}
		sizing.Plan = plan
		sizing.LimitPrice = copytrade.WorstOpenPrice(ev.Side, ev.Price, copytrade.DefaultRules().SpreadTolerance)
		req.Action, req.Size, req.Leverage, req.MarginMode = venue.Open, plan.Size, ev.Leverage, ev.MarginMode
		req.LimitPrice, req.Sizing = sizing.LimitPrice, sizing
	case copytrade.EventClose:
		positions, err := v.Positions(ctx, rel.RelationshipID)
		if err != nil {
			return false, err
		}
		var pos copytrade.Position
		for _, p := range positions {
			if p.Key() == ev.Key() {
				pos = p
			}
		}
		inst, err := v.Instrument(ctx, ev.InstID)
		if err != nil {
			return false, err
		}
		size := copytrade.CloseSize(pos.Size, ev.Size, ev.SizeBefore, inst.LotSize)
		if size.IsZero() {
			return false, nil
		}
		req.Action, req.Size, req.Leverage, req.MarginMode = venue.Close, size, pos.Leverage, pos.MarginMode
	case copytrade.EventLeverage:
		_, err := v.SetLeverage(ctx, venue.LeverageRequest{
			Key: req.ClientOrderID, RelationshipID: rel.RelationshipID, TraderEventID: ev.EventID,
			InstID: ev.InstID, Side: ev.Side, Leverage: ev.Leverage,
		})
		return err == nil, err
	default:
		return false, errors.New("the bench's script has no " + string(ev.Kind) + " events")
	}
	// A rejected order is a row too; the bench's checks flag its status.
	if _, err := v.PlaceOrder(ctx, req); err != nil {
		return false, fmt.Errorf("place %s: %w", req.ClientOrderID, err)
	}
	return true, nil
}
