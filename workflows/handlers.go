package workflows

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
	"smartcopy/copytrade"
)

// Validators run before an update enters history: a request they reject
// leaves no trace and changes nothing (R25). They read the workflow's view
// of the fund; the activities check again against PostgreSQL, which is the
// authority on money.

func (r *relationship) validateFollow(req copytrade.FollowRequest) error {
	req = req.Normalize()
	if err := req.Validate(r.cfg.Rules); err != nil {
		return err
	}
	if req.FollowerID != r.s.FollowerID || req.TraderID != r.s.TraderID {
		return &copytrade.FieldError{Field: "follower_id", Reason: fmt.Sprintf(
			"this relationship is %s following %s, not %s following %s", r.s.FollowerID, r.s.TraderID, req.FollowerID, req.TraderID)}
	}
	if r.s.Status != StatusPending {
		// The same (follower, trader) already has a live relationship (R3);
		// changing copy settings means unfollow, then follow again (R4).
		return &copytrade.FieldError{Field: "trader_id", Reason: fmt.Sprintf(
			"%s already follows %s (status %s); unfollow first to follow again with new settings", r.s.FollowerID, r.s.TraderID, r.s.Status)}
	}
	return nil
}

// follow moves the investment into the copy fund and starts copying (R1,
// R2). A refusal by the database (balance short, limits, unknown trader)
// ends this run: nothing moved.
func (r *relationship) follow(ctx workflow.Context, req copytrade.FollowRequest) (FollowResult, error) {
	req = req.Normalize()
	if err := r.mu.Lock(ctx); err != nil {
		return FollowResult{}, err
	}
	defer r.mu.Unlock()
	if r.s.Status != StatusPending {
		// A second follow accepted while the first was running.
		return FollowResult{}, r.validateFollow(req)
	}
	relID := workflow.GetInfo(ctx).FirstRunID
	var out activities.FollowOutput
	err := workflow.ExecuteActivity(ioCtx(ctx, fmt.Sprintf("follow %s with %s USDT", req.TraderID, req.Investment)),
		a.Follow, activities.FollowInput{RelationshipID: relID, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Request: req}).Get(ctx, &out)
	if err != nil {
		r.s.Status = StatusRefused
		r.publishStatus(ctx)
		r.wakeUp()
		if fe, ok := activities.AsFieldError(err); ok {
			return FollowResult{}, fe
		}
		return FollowResult{}, err
	}
	r.s.RelationshipID = relID
	// The worker's configuration enters the relationship through a side
	// effect, so it is recorded in history: a replay on a worker configured
	// differently still sees the values this relationship started with.
	if err := workflow.SideEffect(ctx, func(workflow.Context) any { return r.cfg }).Get(&r.s.Config); err != nil {
		return FollowResult{}, err
	}
	r.s.Settings = Settings{Investment: req.Investment, CopyExisting: req.CopyExisting, StopLoss: req.StopLoss, StopMode: req.StopMode}
	r.s.LastSeq = out.TraderSeq
	r.s.Fund = out.Fund
	r.s.TraderBook = out.TraderBook
	r.s.TraderEquity, _ = decimal.NewFromString(out.TraderEquity)
	r.s.Status = StatusActive
	r.publishStatus(ctx)
	r.wakeUp()
	return FollowResult{RelationshipID: relID, Status: r.s.Status, Fund: r.s.Fund}, nil
}

func (r *relationship) validateInvestment(req InvestmentRequest) error {
	if r.s.Status != StatusActive {
		return &copytrade.FieldError{Field: "relationship", Reason: fmt.Sprintf("is %s; the investment can change only while active", r.s.Status)}
	}
	if err := copytrade.ValidateAmount("amount", req.Amount); err != nil {
		return err
	}
	switch req.Direction {
	case Raise:
	case Lower:
		if req.Amount.GreaterThan(r.s.Fund.Figures.Available) {
			return &copytrade.FieldError{Field: "amount", Reason: fmt.Sprintf(
				"can release at most the fund's available %s USDT, asked %s", r.s.Fund.Figures.Available, req.Amount)}
		}
		after := r.s.Settings.Investment.Sub(req.Amount)
		if after.LessThan(r.s.Config.Rules.MinInvestment) {
			return &copytrade.FieldError{Field: "amount", Reason: fmt.Sprintf(
				"would leave %s USDT invested, below the minimum %s USDT", after, r.s.Config.Rules.MinInvestment)}
		}
	default:
		return &copytrade.FieldError{Field: "direction", Reason: fmt.Sprintf("must be raise or lower, got %q", req.Direction)}
	}
	return nil
}

// changeInvestment raises or lowers the investment and answers with the new
// fund figures (R18). Adding funds retries syncs that failed for lack of
// them (R15, R16).
func (r *relationship) changeInvestment(ctx workflow.Context, req InvestmentRequest) (activities.Fund, error) {
	if err := r.mu.Lock(ctx); err != nil {
		return activities.Fund{}, err
	}
	defer r.mu.Unlock()
	if err := r.validateInvestment(req); err != nil {
		return activities.Fund{}, err
	}
	delta := req.Amount
	if req.Direction == Lower {
		delta = delta.Neg()
	}
	r.s.InvestmentChanges++
	key := fmt.Sprintf("%s/%d", r.s.RelationshipID, r.s.InvestmentChanges)
	var fund activities.Fund
	err := workflow.ExecuteActivity(ioCtx(ctx, fmt.Sprintf("%s investment by %s USDT", req.Direction, req.Amount)),
		a.ChangeInvestment, activities.InvestmentInput{Rel: r.s.rel(), Key: key, Delta: delta}).Get(ctx, &fund)
	if err != nil {
		if fe, ok := activities.AsFieldError(err); ok {
			return activities.Fund{}, fe
		}
		return activities.Fund{}, err
	}
	r.s.Fund = fund
	r.s.Settings.Investment = fund.Figures.Investment
	if req.Direction == Raise && len(r.s.PendingSyncs) > 0 {
		r.retrySyncs(ctx)
	}
	r.publishDetails(ctx)
	return r.s.Fund, nil
}

func (r *relationship) validateStopLoss(req StopLossRequest) error {
	if r.s.Status != StatusActive {
		return &copytrade.FieldError{Field: "relationship", Reason: fmt.Sprintf("is %s; the stop loss can change only while active", r.s.Status)}
	}
	if err := copytrade.ValidateStopLoss(req.StopLoss); err != nil {
		return err
	}
	if req.StopMode != "" && !req.StopMode.Valid() {
		return &copytrade.FieldError{Field: "stop_mode", Reason: fmt.Sprintf("must be market_close, copy_close or manual_close, got %q", req.StopMode)}
	}
	return nil
}

// setStopLoss sets or clears the stop loss; a stop loss already reached
// stops the relationship at once (R20).
func (r *relationship) setStopLoss(ctx workflow.Context, req StopLossRequest) (Settings, error) {
	if err := r.mu.Lock(ctx); err != nil {
		return Settings{}, err
	}
	defer r.mu.Unlock()
	if err := r.validateStopLoss(req); err != nil {
		return Settings{}, err
	}
	mode := req.StopMode
	if mode == "" {
		mode = r.s.Settings.StopMode
	}
	var fund activities.Fund
	err := workflow.ExecuteActivity(ioCtx(ctx, "set stop loss "+req.StopLoss.String()), a.SetStopLoss,
		activities.StopLossInput{RelationshipID: r.s.RelationshipID, StopLoss: req.StopLoss, StopMode: mode}).Get(ctx, &fund)
	if err != nil {
		return Settings{}, err
	}
	r.s.Settings.StopLoss = req.StopLoss
	r.s.Settings.StopMode = mode
	r.s.Fund = fund
	r.testStopLoss(ctx)
	r.publishDetails(ctx)
	return r.s.Settings, nil
}

func (r *relationship) validateUnfollow() error {
	switch r.s.Status {
	case StatusActive, StatusStopping, StatusEnded:
		return nil
	}
	return &copytrade.FieldError{Field: "relationship", Reason: fmt.Sprintf("%s does not follow %s (status %s)", r.s.FollowerID, r.s.TraderID, r.s.Status)}
}

// unfollow stops new opens at once and handles positions per the stop
// setting, then releases the fund (R22). Asking again answers with the
// current state and moves nothing.
func (r *relationship) unfollow(ctx workflow.Context) (UnfollowResult, error) {
	if err := r.mu.Lock(ctx); err != nil {
		return UnfollowResult{}, err
	}
	defer r.mu.Unlock()
	r.stop(ctx, StopUnfollow)
	return UnfollowResult{Status: r.s.Status, Released: r.s.Released, Fund: r.s.Fund}, nil
}

// summary says in words who follows whom, the fund and the positions: the
// workflow's current details in the Temporal UI and the CLI's status.
func (r *relationship) summary() string {
	s := r.s
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** copies **%s** — %s", s.FollowerID, s.TraderID, s.Status)
	if s.StopReason != "" {
		fmt.Fprintf(&b, " (%s)", s.StopReason)
	}
	b.WriteString("\n\n")
	if s.Status == StatusEnded {
		fmt.Fprintf(&b, "Released %s USDT to the follower's available balance.\n", s.Released.StringFixed(2))
		return b.String()
	}
	f := s.Fund.Figures
	fmt.Fprintf(&b, "Investment %s USDT · equity %s · used %s · available %s · net PnL %s (realized %s, fees %s, unrealized %s)\n",
		s.Settings.Investment.StringFixed(2), f.Equity.StringFixed(2), f.Used.StringFixed(2), f.Available.StringFixed(2),
		f.NetPnL.StringFixed(2), f.RealizedPnL.StringFixed(2), f.Fees.StringFixed(2), f.UnrealizedPnL.StringFixed(2))
	if s.Settings.StopLoss.IsPositive() {
		fmt.Fprintf(&b, "Stop loss %s USDT, then %s\n", s.Settings.StopLoss.StringFixed(2), s.Settings.StopMode)
	}
	if len(s.Fund.Positions) == 0 {
		b.WriteString("\nNo open positions.\n")
	} else {
		b.WriteString("\nPositions:\n")
		for _, p := range s.Fund.Positions {
			fmt.Fprintf(&b, "- %s %s %s @ %s, %sx %s, margin %s\n", p.InstID, p.Side, p.Size, p.AvgPrice.StringFixed(2),
				p.Leverage, p.MarginMode, p.Margin.StringFixed(2))
		}
	}
	if len(s.PendingSyncs) > 0 {
		fmt.Fprintf(&b, "\n%d risk sync(s) wait for funds.\n", len(s.PendingSyncs))
	}
	fmt.Fprintf(&b, "\nTrader events applied %d (last seq %d), duplicates ignored %d.\n", s.Counters.EventsApplied, s.LastSeq, s.Counters.Duplicates)
	return b.String()
}
