// Package api is how programs talk to smartcopy: the follower's requests
// (follow, change investment, stop loss, unfollow, state) and the upstream
// publishing call for trader events. The starter CLI, the demo, the tests
// and the benchmark use it; so can any service that imports it.
package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/workflows"
)

// Client sends follower requests to relationship workflows and reads the
// projection in PostgreSQL for look-ups.
type Client struct {
	Temporal  client.Client
	Store     *store.Store
	TaskQueue string
}

// New builds a Client on the default task queue.
func New(c client.Client, s *store.Store) *Client {
	return &Client{Temporal: c, Store: s, TaskQueue: workflows.TaskQueue}
}

// Follow starts following a trader: update-with-start on the relationship's
// workflow, so the request is validated before anything is written and a
// second follow of the same trader meets the running relationship (R3).
// Refusals come back as *copytrade.FieldError.
func (c *Client) Follow(ctx context.Context, req copytrade.FollowRequest) (workflows.FollowResult, error) {
	req = req.Normalize()
	if fe := req.Validate(c.rules()); fe != nil {
		return workflows.FollowResult{}, fe
	}
	id := workflows.WorkflowID(req.FollowerID, req.TraderID)
	start := c.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: c.TaskQueue,
		// A relationship that ended may be followed again: a new run under
		// the same id. A running one gets the update, whose validator
		// refuses a second follow.
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchTraderID.ValueSet(req.TraderID),
			workflows.SearchFollowerID.ValueSet(req.FollowerID),
			workflows.SearchCopyStatus.ValueSet(string(workflows.StatusPending)),
		),
		StaticSummary: fmt.Sprintf("%s copies %s", req.FollowerID, req.TraderID),
	}, workflows.WorkflowName, workflows.Input{FollowerID: req.FollowerID, TraderID: req.TraderID})
	handle, err := c.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateName:   workflows.UpdateFollow,
			Args:         []any{req},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return workflows.FollowResult{}, fmt.Errorf("follow %s: %w", req.TraderID, err)
	}
	var res workflows.FollowResult
	if err := handle.Get(ctx, &res); err != nil {
		return res, refusal(err)
	}
	return res, nil
}

// ChangeInvestment raises or lowers the investment of the live relationship
// and answers with the new fund figures (R18).
//
// The workflow's validator cannot see the follower's available balance, so
// a raise the follower cannot pay is refused here first, before it reaches
// the workflow's history. The store checks again when the money moves: it
// is the authority, this only keeps the common refusal out of history.
func (c *Client) ChangeInvestment(ctx context.Context, followerID, traderID string, req workflows.InvestmentRequest) (FundView, error) {
	var fund FundView
	if len(req.RequestID) > maxRequestID {
		return fund, &copytrade.FieldError{Field: "request_id", Reason: fmt.Sprintf("must be at most %d characters, got %d", maxRequestID, len(req.RequestID))}
	}
	// A retry of a change that went through finds less available than it
	// asks for; with a request id the workflow answers it, so the
	// pre-check is left to the store.
	if req.Direction == workflows.Raise && req.Amount.IsPositive() && c.Store != nil && req.RequestID == "" {
		available, err := c.Store.AvailableBalance(ctx, followerID)
		if err != nil {
			return fund, err
		}
		if available.LessThan(req.Amount) {
			return fund, &copytrade.FieldError{Field: "amount", Reason: fmt.Sprintf("available balance %s USDT is less than %s", available, req.Amount)}
		}
	}
	err := c.update(ctx, followerID, traderID, workflows.UpdateChangeInvestment, req.RequestID, &fund, req)
	return fund, c.notFollowing(ctx, err, followerID, traderID)
}

// SetStopLoss sets (or clears, with zero) the stop loss and stop setting.
func (c *Client) SetStopLoss(ctx context.Context, followerID, traderID string, req workflows.StopLossRequest) (workflows.Settings, error) {
	var s workflows.Settings
	err := c.update(ctx, followerID, traderID, workflows.UpdateSetStopLoss, "", &s, req)
	return s, c.notFollowing(ctx, err, followerID, traderID)
}

// notFollowing answers a request to a relationship that has no running
// workflow as a refusal naming what is wrong (R25): the follower does not
// follow the trader, or their relationship has ended.
func (c *Client) notFollowing(ctx context.Context, err error, followerID, traderID string) error {
	var nf *serviceerror.NotFound
	if !errors.As(err, &nf) {
		return err
	}
	if c.Store != nil {
		if rel, lerr := c.lastRelationship(ctx, followerID, traderID); lerr == nil && !rel.Live() {
			return &copytrade.FieldError{Field: "relationship", Reason: fmt.Sprintf("%s's relationship with %s has ended", followerID, traderID)}
		}
	}
	return &copytrade.FieldError{Field: "trader_id", Reason: fmt.Sprintf("%s does not follow %s", followerID, traderID)}
}

// Unfollow stops the relationship (R22). Asking again, even after the
// relationship has ended, answers with how it ended and moves nothing.
func (c *Client) Unfollow(ctx context.Context, followerID, traderID string) (workflows.UnfollowResult, error) {
	var res workflows.UnfollowResult
	err := c.update(ctx, followerID, traderID, workflows.UpdateUnfollow, "", &res)
	var done *serviceerror.NotFound
	if errors.As(err, &done) {
		// The workflow has closed: it ended (released) or never followed.
		rel, lerr := c.lastRelationship(ctx, followerID, traderID)
		if lerr != nil {
			return res, &copytrade.FieldError{Field: "trader_id", Reason: fmt.Sprintf("%s does not follow %s", followerID, traderID)}
		}
		res.Status = workflows.Status(rel.Status)
		if rel.Released != nil {
			res.Released = *rel.Released
		}
		return res, nil
	}
	return res, err
}

// State queries the live relationship's state.
func (c *Client) State(ctx context.Context, followerID, traderID string) (workflows.View, error) {
	var v workflows.View
	resp, err := c.Temporal.QueryWorkflow(ctx, workflows.WorkflowID(followerID, traderID), "", workflows.QueryState)
	if err != nil {
		return v, fmt.Errorf("query %s: %w", workflows.WorkflowID(followerID, traderID), err)
	}
	return v, resp.Get(&v)
}

// FundView is the fund figures and positions an update answers with.
type FundView = struct {
	Figures   copytrade.Figures    `json:"figures"`
	Positions []copytrade.Position `json:"positions"`
}

// maxRequestID bounds a caller's request id, which becomes an update id.
const maxRequestID = 200

// update sends an update and waits for its outcome. An empty updateID lets
// the SDK choose one: setting a stop loss and unfollowing are the same
// whether they run once or twice.
func (c *Client) update(ctx context.Context, followerID, traderID, name, updateID string, out any, args ...any) error {
	handle, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		UpdateID:     updateID,
		WorkflowID:   workflows.WorkflowID(followerID, traderID),
		UpdateName:   name,
		Args:         args,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return refusal(err)
	}
	if err := handle.Get(ctx, out); err != nil {
		return refusal(err)
	}
	return nil
}

func (c *Client) lastRelationship(ctx context.Context, followerID, traderID string) (store.Relationship, error) {
	rels, err := c.Store.Relationships(ctx, store.RelationshipFilter{FollowerID: followerID, TraderID: traderID})
	if err != nil || len(rels) == 0 {
		return store.Relationship{}, errors.Join(err, store.ErrUnknownRelationship)
	}
	return rels[len(rels)-1], nil
}

func (c *Client) rules() copytrade.Rules {
	if c.Store != nil {
		return c.Store.Rules()
	}
	return copytrade.DefaultRules()
}

// refusal turns an update's application error (a validator's or handler's
// FieldError, sent as its message "field: reason") back into a FieldError.
func refusal(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		if fe := parseFieldError(appErr.Message()); fe != nil {
			return fe
		}
	}
	return err
}

// parseFieldError reads "field: reason" back into a FieldError when the
// field is one word of lower-case letters and underscores.
func parseFieldError(msg string) *copytrade.FieldError {
	field, reason, ok := strings.Cut(msg, ": ")
	if !ok || field == "" {
		return nil
	}
	for _, r := range field {
		if (r < 'a' || r > 'z') && r != '_' {
			return nil
		}
	}
	return &copytrade.FieldError{Field: field, Reason: reason}
}

// Found is one relationship workflow a visibility query found.
type Found struct {
	WorkflowID string
	RunID      string
	TraderID   string
	FollowerID string
	CopyStatus string
	Running    bool
}

// Find lists relationship workflows matching a Temporal visibility query,
// such as `TraderID = "t1" AND CopyStatus = "active"`: the same query an
// operator types in the Temporal UI.
func (c *Client) Find(ctx context.Context, query string) ([]Found, error) {
	var out []Found
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", query, err)
		}
		for _, ex := range resp.GetExecutions() {
			f := Found{
				WorkflowID: ex.GetExecution().GetWorkflowId(),
				RunID:      ex.GetExecution().GetRunId(),
				Running:    ex.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
			}
			sa := ex.GetSearchAttributes().GetIndexedFields()
			for name, dst := range map[string]*string{
				workflows.SearchTraderID.GetName():   &f.TraderID,
				workflows.SearchFollowerID.GetName(): &f.FollowerID,
				workflows.SearchCopyStatus.GetName(): &f.CopyStatus,
			} {
				if p, ok := sa[name]; ok {
					_ = converter.GetDefaultDataConverter().FromPayload(p, dst)
				}
			}
			out = append(out, f)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}
