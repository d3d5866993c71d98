// Package workflows holds the copy relationship workflow: one long-running
// workflow per follower and trader, which owns the relationship's state
// machine (pending → active → stopping → ended), applies the trader's events
// in order and exactly once, and answers follow, investment, stop-loss and
// unfollow requests as validated updates.
package workflows

import (
	"go.temporal.io/sdk/temporal"
)

// Names shared by the worker, the clients and the workflow. Clients use
// these constants; nobody retypes the strings.
const (
	TaskQueue    = "smartcopy"
	WorkflowName = "CopyRelationship"

	// SignalTraderEvent carries a copytrade.TraderEvent.
	SignalTraderEvent = "trader-event"
	// SignalCheckRisk asks the relationship to test its stop loss at the
	// latest mark prices; the risk sweep sends it to breaching
	// relationships only (R21).
	SignalCheckRisk = "check-risk"

	UpdateFollow           = "follow"
	UpdateChangeInvestment = "change-investment"
	UpdateSetStopLoss      = "set-stop-loss"
	UpdateUnfollow         = "unfollow"

	QueryState = "state"
)

// Custom search attributes, registered by the dev stack and compose, so an
// operator can list `TraderID = "t1" AND CopyStatus = "active"`.
var (
	SearchTraderID   = temporal.NewSearchAttributeKeyKeyword("TraderID")
	SearchFollowerID = temporal.NewSearchAttributeKeyKeyword("FollowerID")
	SearchCopyStatus = temporal.NewSearchAttributeKeyKeyword("CopyStatus")
)

// SearchAttributeNames lists the custom search attributes to register, all
// of type Keyword.
var SearchAttributeNames = []string{
	SearchTraderID.GetName(),
	SearchFollowerID.GetName(),
	SearchCopyStatus.GetName(),
}

// WorkflowID is the relationship workflow's id: readable, and the same for
// the same follower and trader, so an operator finds it in the UI and a
// second follow of the same trader meets the running one (R3).
func WorkflowID(followerID, traderID string) string {
	return "copy/" + followerID + "/" + traderID
}

// Status is where a relationship is in its life.
type Status string

const (
	// StatusPending: the workflow runs but the follow has not completed.
	StatusPending Status = "pending"
	// StatusActive: copying every trader event.
	StatusActive Status = "active"
	// StatusStopping: unfollowed or stopped by the stop loss; opens nothing
	// new and handles positions per the stop setting (R1, R22).
	StatusStopping Status = "stopping"
	// StatusEnded: positions gone, funds released (R19).
	StatusEnded Status = "ended"
	// StatusRefused: the follow was refused; nothing moved.
	StatusRefused Status = "refused"
	// StatusAbandoned: the workflow was started (by a stray trader event)
	// and no follow came.
	StatusAbandoned Status = "abandoned"
)

// Stop reasons.
const (
	StopUnfollow = "unfollow"
	StopLoss     = "stop_loss"
)
