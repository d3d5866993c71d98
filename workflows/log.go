package workflows

import (
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"
)

// Log attribute names, the same as the activities' (activities/log.go), so
// a relationship's lines from the workflow and from its activities join.
const (
	logRelationship  = "relationship_id"
	logTraderEvent   = "trader_event_id"
	logClientOrderID = "client_order_id"
)

// logger is the workflow's logger with the relationship id. The SDK's
// workflow logger already names the workflow and run, and drops lines while
// replaying, so a line is written once however often the code replays.
func (r *relationship) logger(ctx workflow.Context) log.Logger {
	return log.With(workflow.GetLogger(ctx), logRelationship, r.s.RelationshipID)
}
