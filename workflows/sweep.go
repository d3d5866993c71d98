package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
)

// RiskSweepName is the stop-loss sweep workflow's type; one runs per task
// queue, under RiskSweepID.
const RiskSweepName = "RiskSweep"

// RiskSweepID is the sweep's workflow id on a task queue.
func RiskSweepID(taskQueue string) string { return "risk-sweep/" + taskQueue }

// RiskSweepInput configures the sweep.
type RiskSweepInput struct {
	Interval time.Duration `json:"interval"`
	Shift    time.Duration `json:"shift"`
	// Shifts counts the shifts run, across continue-as-new.
	Shifts int `json:"shifts"`
}

// shiftsPerRun bounds the sweep's history: each shift adds a handful of
// events, so a run continues as new well before the history grows large.
const shiftsPerRun = 500

// RiskSweep keeps one SweepStopLoss activity running at all times: a price
// move reaches every breaching relationship within seconds, with one query
// and no timer per relationship (R21). If the worker running a shift dies,
// the missed heartbeat hands the shift to another worker.
func RiskSweep(ctx workflow.Context, in RiskSweepInput) error {
	if in.Interval <= 0 {
		in.Interval = 2 * time.Second
	}
	if in.Shift <= 0 {
		in.Shift = 10 * time.Minute
	}
	ctx = sweepCtx(ctx, in.Interval, in.Shift)
	for i := 0; i < shiftsPerRun; i++ {
		var rep activities.SweepReport
		err := workflow.ExecuteActivity(ctx, a.SweepStopLoss, activities.SweepInput{
			Interval: in.Interval, Shift: in.Shift, SignalName: SignalCheckRisk,
		}).Get(ctx, &rep)
		if err != nil {
			workflow.GetLogger(ctx).Error("stop-loss sweep shift failed", "error", err)
		}
		in.Shifts++
	}
	return workflow.NewContinueAsNewError(ctx, RiskSweepName, in)
}
