package workflows

import (
	"errors"
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
//
// Which options each activity runs under:
//
//	CopyOpen, CopyClose, SyncLeverage, SyncMargin,
//	TraderEvents (gap fill)                  orderLocalCtx, then orderCtx (localThenDurable)
//	CloseAll, HandOver                        orderCtx
//	Follow, ChangeInvestment, SetStopLoss,
//	Release, SetStatus, ReadFund              ioCtx
//	Notify                                    notifyCtx
//	SweepStopLoss                             sweepCtx
//
// What is not retried: a business refusal (balance short, a limit, a rule
// of R1-R3, R18) is a non-retryable application error of type Refused
// (activities.Refused), answered to the update that asked. A copy the rules
// refuse (R9-R11) is a result, recorded with its reason. Anything else,
// the database's, the venue's, Temporal's or a bug's, is retried: an outage
// ends, a bug is fixed and deployed, and the relationship goes on from
// where it stopped, its later events held back in order.

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
// SyncMargin, reading recorded trader events) run as local activities:
// the same timeout and retries as orderCtx. A copy is one short database
// transaction, so running it inside the workflow task saves the round trip
// through the server's activity queue and four history events per copied
// event.
//
// A local activity's retries end when its schedule-to-close timeout passes,
// and the SDK sets that to the start-to-close timeout when none is given:
// 30 s in all, not orderRetry's "without limit". The fault suite showed
// it: a 45 s database outage ended the copies in flight with an error and
// their orders were never placed. The budget stays 30 s, which bounds the
// work a workflow task holds on to; localThenDurable carries a copy that
// outlives it over to a regular activity.
func orderLocalCtx(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            orderRetry,
		Summary:                summary,
	})
}

// localThenDurable runs fn as a local activity (orderLocalCtx) and, when
// its attempts run out with an error retrying could fix, goes on with it
// as a regular activity (orderCtx), whose retries have no limit and wait
// on the server without growing the history: the copy path stays fast and
// survives an outage of any length. Every step is idempotent under its
// key, so the regular activity finds what a local attempt did. Refusals
// and cancellations are returned as they are. Relationships that started
// before versionDurableCopies keep the old answer, the error.
func localThenDurable(ctx workflow.Context, summary string, fn, in, out any) error {
	err := workflow.ExecuteLocalActivity(orderLocalCtx(ctx, summary), fn, in).Get(ctx, out)
	if err == nil || !retryable(err) {
		return err
	}
	if workflow.GetVersion(ctx, versionDurableCopies, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return err
	}
	workflow.GetLogger(ctx).Warn("local attempts ran out; going on as a regular activity", "step", summary, "error", err)
	return workflow.ExecuteActivity(orderCtx(ctx, summary), fn, in).Get(ctx, out)
}

// retryable reports whether trying again could fix err: not a refusal
// (a non-retryable application error), not a cancellation.
func retryable(err error) bool {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NonRetryable() {
		return false
	}
	var canceled *temporal.CanceledError
	return !errors.As(err, &canceled)
}

// sweepCtx is for the stop-loss sweep (RiskSweep). One activity runs a
// whole shift, sweeping at every mark price change and at least every
// interval, so start-to-close is the shift and a minute to finish its last
// sweep. It heartbeats after every sweep: a worker that dies mid-shift is
// noticed after five missed intervals and ten seconds' slack for a slow
// sweep, and the shift starts again on another worker, so a price move
// waits at most about that long to reach a breaching relationship (R21).
// It retries without limit, since the sweep must always run, with 1 s to
// 30 s between tries so an outage does not spin it. It refuses nothing.
func sweepCtx(ctx workflow.Context, interval, shift time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: shift + time.Minute,
		HeartbeatTimeout:    interval*5 + 10*time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
		Summary: "sweep stop losses at mark",
	})
}
