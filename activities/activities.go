// Package activities holds the I/O of a copy relationship: PostgreSQL (the
// store), the trading venue and the mailer. Each activity is thin over that
// I/O and idempotent under a key derived from the relationship and the
// trader event, never from run or activity ids, so a retry or a replay after
// continue-as-new never moves money or places an order twice.
package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/venue"
)

// Activities are registered on the worker as one struct so that the worker
// wires real dependencies and tests wire local ones.
type Activities struct {
	Store *store.Store
	Venue venue.Venue
	// Mailer sends notification emails; nil leaves them in-app only.
	Mailer Mailer
	Rules  copytrade.Rules
	// Metrics counts what happens; nil counts nothing.
	Metrics Metrics
	// Temporal lets the stop-loss sweep signal relationships.
	Temporal client.Client
}

// Metrics receives smartcopy's own counters from activities. Each is
// counted where the database says the thing happened for the first time (a
// fresh fill, a fresh outbox row, a fresh release), so an activity retry or
// a workflow replay never counts twice.
type Metrics interface {
	CopyPlaced(kind copytrade.EventKind)
	CopyFailed(reason string)
	// EventToFill is the time from the trader's event to the copy's fill.
	EventToFill(kind copytrade.EventKind, latency time.Duration)
	StopLossTriggered()
	FundsReleased(amount float64)
}

// Error types of non-retryable application errors: business refusals that
// retrying cannot fix. The workflow reads the FieldError back from the
// error's details.
const (
	ErrTypeRefused = "Refused"
)

// Refused turns a rule refusal into a non-retryable error carrying the
// field and reason.
func Refused(fe *copytrade.FieldError) error {
	return temporal.NewNonRetryableApplicationError(fe.Error(), ErrTypeRefused, nil, *fe)
}

// AsFieldError extracts the FieldError an activity refused with.
func AsFieldError(err error) (*copytrade.FieldError, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeRefused {
		return nil, false
	}
	var fe copytrade.FieldError
	if appErr.HasDetails() && appErr.Details(&fe) == nil {
		return &fe, true
	}
	return &copytrade.FieldError{Field: "request", Reason: appErr.Message()}, true
}

// storeErr passes a store error up, turning a FieldError into a refusal.
func storeErr(err error) error {
	var fe *copytrade.FieldError
	if errors.As(err, &fe) {
		return Refused(fe)
	}
	return err
}

// RelRef names a relationship in activity inputs.
type RelRef struct {
	RelationshipID string `json:"relationship_id"`
	WorkflowID     string `json:"workflow_id"`
	FollowerID     string `json:"follower_id"`
	TraderID       string `json:"trader_id"`
}

// Fund is a relationship's fund figures and open positions, as every
// money-moving activity returns them, so the workflow's view follows
// PostgreSQL's.
type Fund struct {
	Figures   copytrade.Figures    `json:"figures"`
	Positions []copytrade.Position `json:"positions"`
}

func (a *Activities) fund(ctx context.Context, relID string) (Fund, error) {
	fig, pos, err := a.Store.Figures(ctx, relID)
	if err != nil {
		return Fund{}, fmt.Errorf("read fund of %s: %w", relID, err)
	}
	return Fund{Figures: fig, Positions: pos}, nil
}

// FollowInput opens a relationship.
type FollowInput struct {
	RelationshipID string                  `json:"relationship_id"`
	WorkflowID     string                  `json:"workflow_id"`
	Request        copytrade.FollowRequest `json:"request"`
}

// FollowOutput is what the workflow needs to start copying.
type FollowOutput struct {
	// TraderSeq is the trader's last recorded event at follow time: the
	// relationship applies events after it.
	TraderSeq    int64                `json:"trader_seq"`
	TraderEquity string               `json:"trader_equity"`
	TraderBook   []copytrade.Position `json:"trader_book"`
	Fund         Fund                 `json:"fund"`
}

// Follow moves the investment into a new copy fund and records the
// relationship (R1–R3). Refusals (balance short, limits, unknown trader) are
// non-retryable and move nothing.
func (a *Activities) Follow(ctx context.Context, in FollowInput) (FollowOutput, error) {
	log := logger(ctx, logRelationship, in.RelationshipID, "follower_id", in.Request.FollowerID, "trader_id", in.Request.TraderID)
	res, err := a.Store.Follow(ctx, store.FollowParams{
		RelationshipID: in.RelationshipID, WorkflowID: in.WorkflowID, Request: in.Request,
	})
	if err != nil {
		err = storeErr(err)
		if fe, ok := AsFieldError(err); ok {
			log.Info("follow refused", "field", fe.Field, "reason", fe.Reason)
		}
		return FollowOutput{}, err
	}
	log.Info("follow recorded", "investment", in.Request.Investment.String(), "trader_seq", res.TraderSeq)
	out := FollowOutput{
		TraderSeq:    res.TraderSeq,
		TraderEquity: res.Book.Equity.String(),
		TraderBook:   res.Book.Positions,
	}
	out.Fund, err = a.fund(ctx, in.RelationshipID)
	return out, err
}
