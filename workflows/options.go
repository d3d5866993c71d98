package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
)

// Activity timeouts and retries, in one place, with the reasons.
//
// Every activity is idempotent under a key derived from the relationship and
// the trader event, so retrying is always safe; the question is only how
// long to keep trying and what not to retry.

// orderRetry retries without limit: an order, sync, release or status record
// stands between the trader's event and the follower's money, and giving up
// would leave the relationship out of step with PostgreSQL. A database or
// venue outage therefore holds the relationship's later events back (they
// must apply in order) until it ends. Business refusals (insufficient
// balance, limits) are non-retryable errors of type Refused; copy failures
// (insufficient_funds, spread_protection, R11) are results, not errors.
var orderRetry = &temporal.RetryPolicy{
	InitialInterval:        100 * time.Millisecond,
	BackoffCoefficient:     2,
	MaximumInterval:        10 * time.Second,
	NonRetryableErrorTypes: []string{activities.ErrTypeRefused},
}

// orderCtx is for activities that place orders or move money. One database
// transaction and a venue call take milliseconds; 30 s start-to-close
// catches a hung connection without cutting off a slow but live one.
func orderCtx(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         orderRetry,
		Summary:             summary,
	})
}

// ioCtx is for reads and projection writes: same policy as orders, shorter
// timeout because they are single statements.
func ioCtx(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 15 * time.Second,
		RetryPolicy:         orderRetry,
		Summary:             summary,
	})
}

// notifyCtx is for notifications: the outbox row is written on the first
// attempt that reaches PostgreSQL; email delivery may wait on an SMTP
// server, so it retries with a long interval and gives up after about an
// hour, leaving the in-app message as the record.
func notifyCtx(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
			MaximumAttempts:    20,
		},
		Summary: summary,
	})
}

// orderLocalCtx is for the copy path (CopyOpen, CopyClose, SyncLeverage,
// SyncMargin) run as local activities: the same timeout and retries as
// orderCtx. A copy is one short database transaction, so running it inside
// the workflow task saves the round trip through the server's activity
// queue and four history events per copied event. Retries longer than the
// SDK's local retry threshold wait on a durable timer, so a long outage is
// survived the same way.
func orderLocalCtx(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         orderRetry,
		Summary:             summary,
	})
}
