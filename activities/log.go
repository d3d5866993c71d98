package activities

import (
	"context"
	"log/slog"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
)

// Log attribute names, the same on every line so that one relationship,
// trader event or order can be followed through the worker's logs.
const (
	logRelationship  = "relationship_id"
	logTraderEvent   = "trader_event_id"
	logClientOrderID = "client_order_id"
)

// logger is the activity's logger with keyvals added. Inside an activity
// (regular or local) it is the SDK's, which already names the workflow, run
// and activity and goes to the worker's slog handler; called outside one (a
// test calling an activity method directly) it is slog's default.
func logger(ctx context.Context, keyvals ...any) log.Logger {
	if activity.IsActivity(ctx) {
		return log.With(activity.GetLogger(ctx), keyvals...)
	}
	return log.With(log.NewStructuredLogger(slog.Default()), keyvals...)
}

// orderLogger is logger for one order: its relationship, trader event and
// client order id.
func orderLogger(ctx context.Context, relationshipID, traderEventID, clientOrderID string) log.Logger {
	return logger(ctx, logRelationship, relationshipID, logTraderEvent, traderEventID, logClientOrderID, clientOrderID)
}
