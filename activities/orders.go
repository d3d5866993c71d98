package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/venue"
)

// ClientOrderID is the id of the copy order a relationship places for one
// trader event (or one stop step): the same relationship and event always
// give the same id, so the venue places it once however often it is asked.
func ClientOrderID(relationshipID, eventID string) string {
	return relationshipID + ":" + eventID
}

// Sizing is what produced an open's size, stored with the order so the
// follower can see why their margin differs from the trader's (R26).
type Sizing struct {
	TraderEventID string               `json:"trader_event_id"`
	Inputs        copytrade.OpenInputs `json:"inputs"`
	Plan          copytrade.OpenPlan   `json:"plan"`
	// LimitPrice is the worst fill spread protection accepts (zero for
	// copies of existing positions, which have no trader fill to follow).
	LimitPrice decimal.Decimal `json:"limit_price,omitzero"`
}

// OrderOutcome is the result of copying one trader event as an order.
type OrderOutcome struct {
	ClientOrderID string `json:"client_order_id"`
	// Placed is true when an order was filled; Rejection is set when the
	// copy failed and was recorded with its reason; Skipped says there was
	// nothing to do (R13: no position to close).
	Placed    bool                 `json:"placed"`
	Rejection *copytrade.Rejection `json:"rejection,omitempty"`
	Skipped   string               `json:"skipped,omitempty"`
	Fill      venue.Fill           `json:"fill"`
	// Fund is the copy fund after the copy. The sizing inputs are not
	// returned: they are stored with the order (R26), and every byte here
	// is recorded in the relationship's history once per copy.
	Fund Fund `json:"fund"`
}

// OpenInput copies one trader open (or one existing position at follow).
type OpenInput struct {
	Rel   RelRef                `json:"rel"`
	Event copytrade.TraderEvent `json:"event"`
	// Investment is the relationship's current investment amount (R6).
	Investment decimal.Decimal `json:"investment"`
	// Existing marks a copy of a position the trader held at follow time
	// (R5): sized at market with the trader's current margin and equity,
	// with no trader fill to protect against.
	Existing bool `json:"existing,omitempty"`
}

// CopyOpen sizes the trader's open for this relationship (R6, R7) and places
// it (R8 merges on the venue). A copy the rules refuse (R9–R11) is recorded
// as a rejected order with its reason; it is a result, not an error.
func (a *Activities) CopyOpen(ctx context.Context, in OpenInput) (OrderOutcome, error) {
	ev := in.Event
	out := OrderOutcome{ClientOrderID: ClientOrderID(in.Rel.RelationshipID, ev.EventID)}
	req := venue.OrderRequest{
		ClientOrderID:  out.ClientOrderID,
		RelationshipID: in.Rel.RelationshipID,
		FollowerID:     in.Rel.FollowerID,
		TraderID:       in.Rel.TraderID,
		TraderEventID:  ev.EventID,
		InstID:         ev.InstID,
		Side:           ev.Side,
		Action:         venue.Open,
		Leverage:       ev.Leverage,
		MarginMode:     ev.MarginMode,
	}
	inst, err := a.Venue.Instrument(ctx, ev.InstID)
	if errors.Is(err, venue.ErrUnknownInstrument) {
		return a.rejectOrder(ctx, in.Rel, req, out, &copytrade.Rejection{
			Reason: copytrade.ReasonUnknownInstrument, Detail: fmt.Sprintf("instrument %q is not listed", ev.InstID)})
	}
	if err != nil {
		return out, err
	}
	price, err := a.Venue.MarkPrice(ctx, ev.InstID)
	if errors.Is(err, venue.ErrNoMarkPrice) {
		return a.rejectOrder(ctx, in.Rel, req, out, &copytrade.Rejection{
			Reason: copytrade.ReasonNoMarkPrice, Detail: fmt.Sprintf("%s has no mark price yet", ev.InstID)})
	}
	if err != nil {
		return out, err
	}
	sizing := &Sizing{
		TraderEventID: ev.EventID,
		Inputs: copytrade.OpenInputs{
			TraderMargin: ev.Margin,
			TraderEquity: ev.Equity,
			Leverage:     ev.Leverage,
			MarginMode:   ev.MarginMode,
			Investment:   in.Investment,
			Price:        price,
		},
	}
	req.Sizing = sizing
	plan, rej := copytrade.PlanOpen(inst, sizing.Inputs)
	if rej != nil {
		return a.rejectOrder(ctx, in.Rel, req, out, rej)
	}
	sizing.Plan = plan
	req.Size = plan.Size
	if !in.Existing && ev.Price.IsPositive() {
		sizing.LimitPrice = copytrade.WorstOpenPrice(ev.Side, ev.Price, a.Rules.SpreadTolerance)
		req.LimitPrice = sizing.LimitPrice
	}
	return a.place(ctx, in.Rel, req, out, ev.At)
}

// CloseInput copies one trader close.
type CloseInput struct {
	Rel   RelRef                `json:"rel"`
	Event copytrade.TraderEvent `json:"event"`
}

// CopyClose closes the same fraction of the relationship's position as the
// trader closed of theirs (R12); with nothing held there, nothing happens
// (R13). Realized PnL and the fee go to the copy fund on the venue (R14).
func (a *Activities) CopyClose(ctx context.Context, in CloseInput) (OrderOutcome, error) {
	ev := in.Event
	out := OrderOutcome{ClientOrderID: ClientOrderID(in.Rel.RelationshipID, ev.EventID)}
	pos, ok, err := a.position(ctx, in.Rel.RelationshipID, ev.Key())
	if err != nil {
		return out, err
	}
	log := orderLogger(ctx, in.Rel.RelationshipID, ev.EventID, out.ClientOrderID)
	if !ok {
		out.Skipped = copytrade.ReasonNoPosition
		log.Info("copy skipped", "reason", out.Skipped, "inst_id", ev.InstID, "side", ev.Side)
		out.Fund, err = a.fund(ctx, in.Rel.RelationshipID)
		return out, err
	}
	inst, err := a.Venue.Instrument(ctx, ev.InstID)
	if err != nil {
		return out, err
	}
	size := copytrade.CloseSize(pos.Size, ev.Size, ev.SizeBefore, inst.LotSize)
	if size.IsZero() {
		out.Skipped = "rounds_to_zero"
		log.Info("copy skipped", "reason", out.Skipped, "inst_id", ev.InstID, "side", ev.Side)
		out.Fund, err = a.fund(ctx, in.Rel.RelationshipID)
		return out, err
	}
	return a.place(ctx, in.Rel, venue.OrderRequest{
		ClientOrderID:  out.ClientOrderID,
		RelationshipID: in.Rel.RelationshipID,
		FollowerID:     in.Rel.FollowerID,
		TraderID:       in.Rel.TraderID,
		TraderEventID:  ev.EventID,
		InstID:         ev.InstID,
		Side:           ev.Side,
		Action:         venue.Close,
		Size:           size,
		Leverage:       pos.Leverage,
		MarginMode:     pos.MarginMode,
	}, out, ev.At)
}

// CloseAllInput closes every position at market when a relationship stops
// with stop setting market_close (R1, R20, R22).
type CloseAllInput struct {
	Rel RelRef `json:"rel"`
	// Reason is unfollow or stop_loss; it becomes part of each order's id.
	Reason string `json:"reason"`
}

// CloseAllOutcome lists the closing fills and the fund after them.
type CloseAllOutcome struct {
	Fills []venue.Fill `json:"fills"`
	Fund  Fund         `json:"fund"`
}

// CloseAll closes every open position of the relationship at market. Each
// close has its own client order id, so a retry closes only what is left.
func (a *Activities) CloseAll(ctx context.Context, in CloseAllInput) (CloseAllOutcome, error) {
	var out CloseAllOutcome
	positions, err := a.Venue.Positions(ctx, in.Rel.RelationshipID)
	if err != nil {
		return out, err
	}
	for _, p := range positions {
		id := ClientOrderID(in.Rel.RelationshipID, in.Reason+"/"+p.Key().String())
		log := orderLogger(ctx, in.Rel.RelationshipID, in.Reason, id)
		fill, err := a.Venue.PlaceOrder(ctx, venue.OrderRequest{
			ClientOrderID:  id,
			RelationshipID: in.Rel.RelationshipID,
			FollowerID:     in.Rel.FollowerID,
			TraderID:       in.Rel.TraderID,
			TraderEventID:  in.Reason,
			InstID:         p.InstID,
			Side:           p.Side,
			Action:         venue.Close,
			Size:           p.Size,
			Leverage:       p.Leverage,
			MarginMode:     p.MarginMode,
		})
		if err != nil {
			log.Warn("market close failed", "error", err)
			return out, fmt.Errorf("close %s: %w", p.Key(), err)
		}
		if fill.Status != venue.Filled {
			// A market close the venue refuses (no mark price) cannot be
			// skipped: the fund cannot be released with positions open.
			log.Warn("market close rejected", "reason", fill.Reason, "detail", fill.Detail)
			return out, fmt.Errorf("close %s rejected: %s %s", p.Key(), fill.Reason, fill.Detail)
		}
		log.Info("market close filled", "inst_id", p.InstID, "side", p.Side, "size", fill.Size.String(),
			"price", fill.Price.String(), "replayed", fill.Replayed)
		out.Fills = append(out.Fills, fill)
	}
	out.Fund, err = a.fund(ctx, in.Rel.RelationshipID)
	return out, err
}

func (a *Activities) position(ctx context.Context, relID string, key copytrade.PositionKey) (copytrade.Position, bool, error) {
	positions, err := a.Venue.Positions(ctx, relID)
	if err != nil {
		return copytrade.Position{}, false, err
	}
	for _, p := range positions {
		if p.Key() == key && p.Size.IsPositive() {
			return p, true, nil
		}
	}
	return copytrade.Position{}, false, nil
}

// place sends an order to the venue and records its outcome. eventAt is
// the trader event's time, for the event-to-fill latency (zero: not
// measured, as for copies of existing positions).
func (a *Activities) place(ctx context.Context, rel RelRef, req venue.OrderRequest, out OrderOutcome, eventAt time.Time) (OrderOutcome, error) {
	log := orderLogger(ctx, rel.RelationshipID, req.TraderEventID, req.ClientOrderID)
	fill, err := a.Venue.PlaceOrder(ctx, req)
	if err != nil {
		log.Warn("place order failed", "error", err)
		return out, fmt.Errorf("place %s: %w", req.ClientOrderID, err)
	}
	out.Fill = fill
	kind := copytrade.EventKind(req.Action)
	if fill.Status == venue.Filled {
		out.Placed = true
		var latency time.Duration
		if !eventAt.IsZero() {
			// The fill time is PostgreSQL's clock, the event's the
			// publisher's; a skew between them must not make a negative
			// latency.
			latency = max(fill.FilledAt.Sub(eventAt), 0)
		}
		log.Info("copy filled", "action", req.Action, "inst_id", req.InstID, "side", req.Side,
			"size", fill.Size.String(), "price", fill.Price.String(), "event_to_fill_ms", latency.Milliseconds(), "replayed", fill.Replayed)
		if a.Metrics != nil && !fill.Replayed {
			a.Metrics.CopyPlaced(kind)
			if !eventAt.IsZero() {
				a.Metrics.EventToFill(kind, latency)
			}
		}
	} else {
		out.Rejection = &copytrade.Rejection{Reason: fill.Reason, Detail: fill.Detail}
		log.Warn("copy failed", "action", req.Action, "inst_id", req.InstID, "side", req.Side,
			"reason", fill.Reason, "detail", fill.Detail, "replayed", fill.Replayed)
		if a.Metrics != nil && !fill.Replayed {
			a.Metrics.CopyFailed(fill.Reason)
		}
	}
	out.Fund, err = a.fund(ctx, rel.RelationshipID)
	return out, err
}

// rejectOrder records a copy the rules refused before it reached the venue
// (R9–R11).
func (a *Activities) rejectOrder(ctx context.Context, rel RelRef, req venue.OrderRequest, out OrderOutcome, rej *copytrade.Rejection) (OrderOutcome, error) {
	fill, err := a.Store.RecordRejectedOrder(ctx, req, rej)
	if err != nil {
		return out, fmt.Errorf("record rejected %s: %w", req.ClientOrderID, err)
	}
	out.Fill = fill
	out.Rejection = rej
	orderLogger(ctx, rel.RelationshipID, req.TraderEventID, req.ClientOrderID).Warn("copy failed",
		"action", req.Action, "inst_id", req.InstID, "side", req.Side, "reason", rej.Reason, "detail", rej.Detail, "replayed", fill.Replayed)
	if a.Metrics != nil && !fill.Replayed {
		a.Metrics.CopyFailed(rej.Reason)
	}
	out.Fund, err = a.fund(ctx, rel.RelationshipID)
	return out, err
}
