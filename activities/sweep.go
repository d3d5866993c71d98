package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"

	"smartcopy/store"
)

// SweepInput configures one shift of the stop-loss sweep.
type SweepInput struct {
	// Interval is the longest a price move waits for a sweep when no change
	// notification arrives (a price written by another path, a missed
	// notification).
	Interval time.Duration `json:"interval"`
	// Shift is how long this activity runs before handing over to the next
	// one, so the workflow's history shows the sweep is alive.
	Shift time.Duration `json:"shift"`
	// SignalName is the relationship workflow's risk-check signal.
	SignalName string `json:"signal_name"`
}

// SweepReport counts one shift's work.
type SweepReport struct {
	Sweeps   int `json:"sweeps"`
	Signaled int `json:"signaled"`
}

// SweepStopLoss finds relationships whose net PnL at the latest mark prices
// has reached their stop loss, with one query over all of them, and signals
// only those (R21): no timer per relationship. It sweeps whenever a mark
// price changes (PostgreSQL LISTEN) and at least every Interval, for one
// Shift, heartbeating as it goes so a dead worker's sweep moves to another.
func (a *Activities) SweepStopLoss(ctx context.Context, in SweepInput) (SweepReport, error) {
	var rep SweepReport
	if a.Temporal == nil {
		return rep, errors.New("sweep: activities have no Temporal client")
	}
	changes := listen(ctx, a.Store.Pool(), store.MarkPriceChannel)
	end := time.Now().Add(in.Shift)
	tick := time.NewTicker(in.Interval)
	defer tick.Stop()
	recent := map[string]time.Time{}
	for time.Now().Before(end) {
		breaches, err := a.Store.StopLossBreaches(ctx)
		if err != nil {
			return rep, err
		}
		rep.Sweeps++
		for _, b := range breaches {
			// A breaching relationship is stopping already; one signal per
			// interval is enough to make sure it heard.
			if t, ok := recent[b.RelationshipID]; ok && time.Since(t) < in.Interval {
				continue
			}
			recent[b.RelationshipID] = time.Now()
			err := a.Temporal.SignalWorkflow(ctx, b.WorkflowID, "", in.SignalName, nil)
			var gone *serviceerror.NotFound
			if err != nil && !errors.As(err, &gone) {
				return rep, fmt.Errorf("sweep: signal %s: %w", b.WorkflowID, err)
			}
			logger(ctx, logRelationship, b.RelationshipID).Info("stop loss reached at mark: relationship told to check",
				"relationship_workflow_id", b.WorkflowID)
			rep.Signaled++
		}
		activity.RecordHeartbeat(ctx, rep)
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-activity.GetWorkerStopChannel(ctx):
			// The worker is shutting down: end the shift cleanly so the
			// workflow hands the next one to whichever worker polls.
			return rep, nil
		case <-changes:
		case <-tick.C:
		}
	}
	return rep, nil
}

// listen delivers a value each time channel is notified, until ctx ends. If
// listening fails, it says nothing and the sweep falls back to its ticker.
func listen(ctx context.Context, pool *pgxpool.Pool, channel string) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, "listen "+channel); err != nil {
			return
		}
		for {
			if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
				// The connection is left in LISTEN state; drop it
				// rather than hand it back to the pool.
				conn.Conn().Close(context.WithoutCancel(ctx))
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}
