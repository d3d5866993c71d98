package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
	"smartcopy/copytrade"
	"smartcopy/venue"
)

// Workflows holds the worker's configuration for the workflows it runs.
type Workflows struct {
	Config Config
}

// a is only a typed handle for naming activity methods; the worker
// registers the real struct.
var a *activities.Activities

// CopyRelationship is one follower following one trader, from follow to
// funds released. It is registered under WorkflowName.
func (w *Workflows) CopyRelationship(ctx workflow.Context, in Input) (Result, error) {
	r := &relationship{cfg: w.Config}
	if in.State != nil {
		r.s = *in.State
	} else {
		r.s = State{FollowerID: in.FollowerID, TraderID: in.TraderID, Status: StatusPending}
	}
	if err := r.setup(ctx); err != nil {
		return Result{}, err
	}
	return r.run(ctx)
}

// relationship is one run's workflow: the state, the channels it listens on
// and the mutex that keeps event processing and update handlers from
// interleaving their activities.
type relationship struct {
	cfg      Config // the worker's; used until the follow captures it
	s        State
	mu       workflow.Mutex
	events   workflow.ReceiveChannel
	risk     workflow.ReceiveChannel
	wake     workflow.Channel
	gapTimer workflow.Future
	gapFired bool
	// fetchedFor is the sequence number a read of recorded events was last
	// made for, so a gap PostgreSQL cannot fill is read once, then held
	// back and skipped as before.
	fetchedFor int64
	// taskLength and appliedInTask estimate how far a long workflow task
	// has grown the history since it started (the length is read once per
	// task).
	taskLength, appliedInTask int
	// notifying counts notification activities in flight.
	notifying int
}

func (r *relationship) setup(ctx workflow.Context) error {
	r.mu = workflow.NewMutex(ctx)
	r.events = workflow.GetSignalChannel(ctx, SignalTraderEvent)
	r.risk = workflow.GetSignalChannel(ctx, SignalCheckRisk)
	r.wake = workflow.NewBufferedChannel(ctx, 1)
	if r.s.Held == nil {
		r.s.Held = map[int64]copytrade.TraderEvent{}
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (View, error) {
		return View{State: r.s, Summary: r.summary()}, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateFollow, r.follow,
		workflow.UpdateHandlerOptions{Validator: r.validateFollow}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateChangeInvestment, r.changeInvestment,
		workflow.UpdateHandlerOptions{Validator: r.validateInvestment}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSetStopLoss, r.setStopLoss,
		workflow.UpdateHandlerOptions{Validator: r.validateStopLoss}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateUnfollow, r.unfollow,
		workflow.UpdateHandlerOptions{Validator: r.validateUnfollow})
}

// run is the relationship's life: wait for the follow, copy existing
// positions if asked, then apply trader events until the relationship ends,
// continuing as new when the history grows long.
func (r *relationship) run(ctx workflow.Context) (Result, error) {
	if r.s.Status == StatusPending {
		followed, err := r.awaitFollow(ctx)
		if err != nil {
			return Result{}, err
		}
		if !followed {
			r.s.Status = StatusAbandoned
			r.publishStatus(ctx)
		}
	}
	for r.s.Status == StatusActive || r.s.Status == StatusStopping {
		if !r.s.CopiedExisting {
			r.copyExisting(ctx)
		}
		if r.shouldContinueAsNew(ctx) {
			return Result{}, r.continueAsNew(ctx)
		}
		r.drainSignals(ctx)
		if !r.hasWork() {
			r.waitForWork(ctx)
		}
		r.applyReady(ctx)
		if r.s.RiskCheckPending {
			r.checkRisk(ctx)
		}
	}
	// Let running update handlers answer before the run closes; events
	// still queued have nothing left to act on.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return Result{}, err
	}
	if err := r.notificationsSent(ctx); err != nil {
		return Result{}, err
	}
	r.drainSignals(ctx)
	return Result{
		RelationshipID: r.s.RelationshipID,
		Status:         r.s.Status,
		StopReason:     r.s.StopReason,
		Released:       r.s.Released,
	}, nil
}

// awaitFollow waits for the follow update, at most FollowTimeout. From
// versionCancelFollowTimer on, the timer is cancelled once the follow
// came: AwaitWithTimeout leaves it running in SDK v1.51, and every
// relationship then woke for a workflow task a minute after its follow.
func (r *relationship) awaitFollow(ctx workflow.Context) (bool, error) {
	followed := func() bool { return r.s.Status != StatusPending }
	if workflow.GetVersion(ctx, versionCancelFollowTimer, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return workflow.AwaitWithTimeout(ctx, r.cfg.FollowTimeout, followed)
	}
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimerWithOptions(timerCtx, r.cfg.FollowTimeout, workflow.TimerOptions{Summary: "wait for the follow"})
	if err := workflow.Await(ctx, func() bool { return followed() || timer.IsReady() }); err != nil {
		return false, err
	}
	return followed(), nil
}

// waitForWork blocks until a trader event, a risk check, an update's wake-up
// or the gap timer arrives, then takes everything else already delivered so
// a burst is applied in one pass.
func (r *relationship) waitForWork(ctx workflow.Context) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(r.events, func(c workflow.ReceiveChannel, _ bool) {
		var ev copytrade.TraderEvent
		c.Receive(ctx, &ev)
		r.enqueue(ctx, ev)
	})
	sel.AddReceive(r.risk, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		r.s.RiskCheckPending = true
	})
	sel.AddReceive(r.wake, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
	})
	if r.gapTimer != nil {
		sel.AddFuture(r.gapTimer, func(workflow.Future) {
			r.gapTimer = nil
			r.gapFired = r.gapExpired(ctx)
		})
	}
	sel.Select(ctx)
	for sel.HasPending() {
		sel.Select(ctx)
	}
}

// hasWork reports whether the main loop can act without waiting: the next
// event in sequence is held (after continue-as-new, or a burst), a risk
// check is asked for, or the gap timer fired.
func (r *relationship) hasWork() bool {
	_, next := r.s.Held[r.s.LastSeq+1]
	// Events left in PostgreSQL (dropped past maxHeld, or across
	// continue-as-new) are work too: no signal will come for them.
	behind := r.s.Behind && r.fetchedFor != r.s.LastSeq+1
	return next || r.s.RiskCheckPending || r.gapFired || behind
}

// wakeUp makes the main loop look at the state again after an update
// changed it.
func (r *relationship) wakeUp() {
	r.wake.SendAsync(struct{}{})
}

// drainSignals takes every signal already delivered without blocking, so
// none is lost across continue-as-new and none is left unread at the end.
func (r *relationship) drainSignals(ctx workflow.Context) {
	for {
		var ev copytrade.TraderEvent
		if !r.events.ReceiveAsync(&ev) {
			break
		}
		r.enqueue(ctx, ev)
	}
	for r.risk.ReceiveAsync(nil) {
		r.s.RiskCheckPending = true
	}
}

// enqueue holds an event until every earlier one of the trader's has been
// applied. An event at or below the watermark was applied before (R24).
func (r *relationship) enqueue(ctx workflow.Context, ev copytrade.TraderEvent) {
	log := r.logger(ctx)
	if err := ev.Validate(); err != nil || ev.Seq <= 0 || ev.TraderID != r.s.TraderID {
		r.s.Counters.Invalid++
		log.Warn("dropping invalid trader event", logTraderEvent, ev.EventID, "seq", ev.Seq, "error", err)
		return
	}
	if ev.Seq <= r.s.LastSeq {
		if r.s.wasSkipped(ev.Seq) {
			r.s.Counters.Late++
			log.Warn("dropping trader event that arrived after its gap was skipped", logTraderEvent, ev.EventID, "seq", ev.Seq)
		} else {
			r.s.Counters.Duplicates++
		}
		return
	}
	if _, held := r.s.Held[ev.Seq]; held {
		r.s.Counters.Duplicates++
		return
	}
	if len(r.s.Held) >= maxHeld && r.eventsFromStore(ctx) {
		// Far ahead of what is being applied: PostgreSQL has it, and the
		// state (carried through continue-as-new) stays small.
		r.s.Behind = true
		r.s.Counters.DeferredToStore++
		r.holdNearest(ctx, ev)
		return
	}
	r.s.Held[ev.Seq] = ev
}

// holdNearest keeps the held events the ones nearest the watermark when
// the state is full: ev replaces the farthest held event if it comes
// before it. Dropping ev instead left a hole below the held events that
// the gap fill read from PostgreSQL but could not hold either, and the
// relationship then waited on a gap that was only in its own state
// (versionHoldNearest).
func (r *relationship) holdNearest(ctx workflow.Context, ev copytrade.TraderEvent) {
	keys := workflow.DeterministicKeys(r.s.Held)
	farthest := keys[len(keys)-1]
	if ev.Seq > farthest {
		return
	}
	if workflow.GetVersion(ctx, versionHoldNearest, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	delete(r.s.Held, farthest)
	r.s.Held[ev.Seq] = ev
}

// maxHeld bounds the events held in the state ahead of the next one to
// apply; beyond it they are read back from PostgreSQL when their turn
// comes.
const maxHeld = 256

// eventsFromStore reports whether this relationship fills gaps from the
// events recorded in PostgreSQL (versionEventsFromStore).
func (r *relationship) eventsFromStore(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, versionEventsFromStore, workflow.DefaultVersion, 1) == 1
}

// fetchMissing reads the trader's recorded events after the watermark when
// the next one has not arrived but later ones have (or were dropped past
// maxHeld): the publisher records every event before signalling it, so
// PostgreSQL has it. It reports whether the next event is now held.
func (r *relationship) fetchMissing(ctx workflow.Context) bool {
	next := r.s.LastSeq + 1
	if r.fetchedFor == next || !r.eventsFromStore(ctx) {
		return false
	}
	r.fetchedFor = next
	var events []copytrade.TraderEvent
	err := localThenDurable(ctx, fmt.Sprintf("read recorded trader events after seq %d", r.s.LastSeq),
		a.TraderEvents, activities.TraderEventsInput{TraderID: r.s.TraderID, AfterSeq: r.s.LastSeq, Limit: maxHeld}, &events)
	if err != nil {
		r.logger(ctx).Error("reading recorded trader events failed", "after_seq", r.s.LastSeq, "error", err)
		return false
	}
	r.s.Behind = len(events) == maxHeld
	for _, ev := range events {
		r.enqueue(ctx, ev)
	}
	_, ok := r.s.Held[next]
	return ok
}

// applyReady applies held events in the trader's order. A gap holds back
// what follows it for GapHoldBack; then the missing events are recorded as
// skipped and the rest applied.
func (r *relationship) applyReady(ctx workflow.Context) {
	for {
		next, ok := r.s.Held[r.s.LastSeq+1]
		if !ok {
			if len(r.s.Held) == 0 && !r.s.Behind {
				r.s.GapSince = time.Time{}
				r.gapFired = false
				return
			}
			if r.fetchMissing(ctx) {
				continue
			}
			if len(r.s.Held) == 0 {
				// Nothing recorded beyond the watermark after all.
				r.s.Behind = false
				continue
			}
			if !r.gapFired {
				r.holdGap(ctx)
				return
			}
			r.skipGap(ctx)
			continue
		}
		delete(r.s.Held, next.Seq)
		r.s.GapSince = time.Time{}
		r.gapFired = false
		r.apply(ctx, next)
		r.s.LastSeq = next.Seq
		r.s.Counters.EventsApplied++
		r.appliedInTask++
		if r.shouldContinueAsNew(ctx) {
			// A burst of events must not carry the history far past
			// the server's suggestion: the rest stay held and cross
			// into the next run.
			return
		}
		r.yieldLongTask(ctx)
	}
}

// maxAppliedPerTask bounds the events one workflow task applies. Signals
// that arrive meanwhile enter the history unseen until the next task, and
// the history length is read once per task, so an unbounded task can carry
// the history well past the continue-as-new point before anyone looks.
//
// The server also fails a workflow task outright once more than 100 events
// (signals) are buffered while it runs (history.maximumBufferedEventsBatch),
// and the copies it made are then made again on the retry (found placed:
// idempotent, but wasted). At a few milliseconds per copy, 50 events keep a
// task well inside that.
const maxAppliedPerTask = 50

// yieldLongTask ends the workflow task after maxAppliedPerTask events with
// a one-millisecond timer (versionYieldLongTask), so the next task reads
// the history's true length and answers waiting queries.
func (r *relationship) yieldLongTask(ctx workflow.Context) {
	if r.appliedInTask < maxAppliedPerTask {
		return
	}
	if workflow.GetVersion(ctx, versionYieldLongTask, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	_ = workflow.NewTimerWithOptions(ctx, time.Millisecond, workflow.TimerOptions{Summary: "yield a long burst"}).Get(ctx, nil)
	// If the task did not change (a replay quirk), count afresh anyway.
	r.appliedInTask = 0
}

// holdGap starts (or keeps) the timer that bounds how long a gap holds
// later events back.
func (r *relationship) holdGap(ctx workflow.Context) {
	now := workflow.Now(ctx)
	if r.s.GapSince.IsZero() {
		r.s.GapSince = now
	}
	if r.gapTimer != nil {
		return
	}
	wait := r.s.GapSince.Add(r.s.Config.GapHoldBack).Sub(now)
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	r.gapTimer = workflow.NewTimerWithOptions(ctx, wait, workflow.TimerOptions{Summary: "trader event gap"})
}

// gapExpired reports whether the gap timer that just fired ends the gap
// held now. The timer is not cancelled when its gap fills, so it can fire
// during a later gap, or before holdGap has dated a new one: that gap has
// its own GapHoldBack, counted from its GapSince, and holdGap starts a
// timer for the rest of it. Relationships that started before
// versionGapTimerPerGap replay the old answer (every firing ends the gap).
func (r *relationship) gapExpired(ctx workflow.Context) bool {
	if !r.s.GapSince.IsZero() && !workflow.Now(ctx).Before(r.s.GapSince.Add(r.s.Config.GapHoldBack)) {
		return true
	}
	return workflow.GetVersion(ctx, versionGapTimerPerGap, workflow.DefaultVersion, 1) == workflow.DefaultVersion
}

// skipGap gives up on the missing events before the oldest held one.
func (r *relationship) skipGap(ctx workflow.Context) {
	oldest := workflow.DeterministicKeys(r.s.Held)[0]
	for seq := r.s.LastSeq + 1; seq < oldest; seq++ {
		r.s.noteSkipped(seq)
		r.s.Counters.GapsSkipped++
	}
	r.logger(ctx).Warn("skipped missing trader events after holding back",
		"from_seq", r.s.LastSeq+1, "to_seq", oldest-1, "hold_back", r.s.Config.GapHoldBack)
	r.s.LastSeq = oldest - 1
	r.gapFired = false
	r.s.GapSince = time.Time{}
}

// apply copies one trader event, under the mutex so an update handler's
// money moves never interleave with it.
func (r *relationship) apply(ctx workflow.Context, ev copytrade.TraderEvent) {
	if err := r.mu.Lock(ctx); err != nil {
		return
	}
	defer r.mu.Unlock()
	switch r.s.Status {
	case StatusActive:
	case StatusStopping:
		// copy_close: open nothing new, keep following closes and risk
		// changes of what is still held (R1).
		if ev.Kind == copytrade.EventOpen {
			r.s.noteOrder(OrderNote{EventID: ev.EventID, Kind: string(ev.Kind), InstID: ev.InstID, Side: ev.Side, Result: "not copied: relationship is stopping"})
			return
		}
	default:
		return
	}
	if ev.Kind == copytrade.EventLeverage {
		// A newer leverage change re-margins the whole position: it
		// replaces any sync still waiting for funds there (R15, R16).
		r.dropPendingSyncs(ctx, ev.Key())
	}
	switch ev.Kind {
	case copytrade.EventOpen:
		r.copyOpen(ctx, ev, false)
	case copytrade.EventClose:
		r.copyClose(ctx, ev)
	case copytrade.EventLeverage, copytrade.EventMargin:
		r.syncRisk(ctx, ev, 0)
	}
	if ev.Kind == copytrade.EventClose && !r.s.holds(ev.Key()) {
		// The position a waiting sync was about is gone; a new one
		// opened later has the trader's current leverage.
		r.dropPendingSyncs(ctx, ev.Key())
	}
	if r.s.Status == StatusActive {
		r.testStopLoss(ctx)
	} else if r.s.Status == StatusStopping && len(r.s.Fund.Positions) == 0 {
		r.finish(ctx)
	}
}

func (r *relationship) copyOpen(ctx workflow.Context, ev copytrade.TraderEvent, existing bool) {
	var out activities.OrderOutcome
	err := r.copyActivity(ctx, fmt.Sprintf("copy open %s %s (event %s)", ev.InstID, ev.Side, ev.EventID),
		a.CopyOpen, activities.OpenInput{Rel: r.s.rel(), Event: ev, Investment: r.s.Settings.Investment, Existing: existing}, &out)
	if err != nil {
		r.activityFailed(ctx, "copy open", ev, err)
		return
	}
	r.recordOrder(ctx, ev, out)
}

func (r *relationship) copyClose(ctx workflow.Context, ev copytrade.TraderEvent) {
	var out activities.OrderOutcome
	err := r.copyActivity(ctx, fmt.Sprintf("copy close %s %s (event %s)", ev.InstID, ev.Side, ev.EventID),
		a.CopyClose, activities.CloseInput{Rel: r.s.rel(), Event: ev}, &out)
	if err != nil {
		r.activityFailed(ctx, "copy close", ev, err)
		return
	}
	r.recordOrder(ctx, ev, out)
}

// Versions of the workflow code, for workflow.GetVersion: a running
// relationship replays the code path it started on.
const (
	// versionLocalCopies: the copy path runs as local activities.
	versionLocalCopies = "local-copy-activities"
	// versionDurableCopies: a local activity whose attempts ran out goes
	// on as a regular activity (localThenDurable).
	versionDurableCopies = "durable-copy-retries"
	// versionCancelFollowTimer: the follow-timeout timer is cancelled
	// once the follow came.
	versionCancelFollowTimer = "cancel-follow-timer"
	// versionEventsFromStore: gaps are filled from the events recorded in
	// PostgreSQL, and at most maxHeld events are held in the state.
	versionEventsFromStore = "events-from-store"
	// versionHistoryEstimate: HistoryLimit counts the events applied in a
	// long workflow task, not only the length at its start.
	versionHistoryEstimate = "history-estimate"
	// versionYieldLongTask: a workflow task applies at most
	// maxAppliedPerTask events before yielding.
	versionYieldLongTask = "yield-long-task"
	// versionStaleSyncs: a sync waiting for funds is dropped when a later
	// leverage change or a full close makes it stale.
	versionStaleSyncs = "drop-stale-pending-syncs"
	// versionGapTimerPerGap: a gap timer that fires during a later gap
	// does not end it (gapExpired).
	versionGapTimerPerGap = "gap-timer-per-gap"
	// versionHoldNearest: a full Held keeps the events nearest the
	// watermark (holdNearest).
	versionHoldNearest = "hold-nearest-events"
)

// copyActivity runs one step of the copy path and decodes its result into
// out: as a local activity that goes on as a regular one if an outage
// outlasts it (localThenDurable). Relationships that started before
// versionLocalCopies keep running it as a regular activity, so their
// histories replay unchanged.
func (r *relationship) copyActivity(ctx workflow.Context, summary string, fn, in, out any) error {
	if workflow.GetVersion(ctx, versionLocalCopies, workflow.DefaultVersion, 1) == 1 {
		return localThenDurable(ctx, summary, fn, in, out)
	}
	return workflow.ExecuteActivity(orderCtx(ctx, summary), fn, in).Get(ctx, out)
}

// recordOrder takes an order's outcome into the state and tells the
// follower about a failed copy (R9–R11, R23).
func (r *relationship) recordOrder(ctx workflow.Context, ev copytrade.TraderEvent, out activities.OrderOutcome) {
	r.s.Fund = out.Fund
	note := OrderNote{EventID: ev.EventID, Kind: string(ev.Kind), InstID: ev.InstID, Side: ev.Side}
	switch {
	case out.Placed:
		r.s.Counters.OrdersFilled++
		note.Result, note.Size, note.Price = "filled", out.Fill.Size, out.Fill.Price
	case out.Rejection != nil:
		r.s.Counters.OrdersFailed++
		note.Result = "failed: " + out.Rejection.Reason
		r.notify(ctx, activities.NotifyInput{
			Key:     "notify/" + out.ClientOrderID,
			Kind:    activities.NotifyCopyFailed,
			Subject: fmt.Sprintf("Copy of %s's %s %s %s failed: %s", r.s.TraderID, ev.Kind, ev.InstID, ev.Side, out.Rejection.Reason),
			Body:    out.Rejection.Detail,
		})
	default:
		note.Result = "nothing to do: " + out.Skipped
	}
	r.s.noteOrder(note)
	r.publishDetails(ctx)
}

// syncRisk copies a leverage or margin change (R15, R16); attempt > 0 is a
// retry after the follower added funds.
func (r *relationship) syncRisk(ctx workflow.Context, ev copytrade.TraderEvent, attempt int) bool {
	key := activities.ClientOrderID(r.s.RelationshipID, ev.EventID)
	if attempt > 0 {
		key = fmt.Sprintf("%s/retry-%d", key, attempt)
	}
	in := activities.SyncInput{Rel: r.s.rel(), Event: ev, Key: key}
	summary := fmt.Sprintf("sync %s %s %s (event %s)", ev.Kind, ev.InstID, ev.Side, ev.EventID)
	var out activities.SyncOutcome
	fn := a.SyncLeverage
	if ev.Kind == copytrade.EventMargin {
		fn = a.SyncMargin
	}
	if err := r.copyActivity(ctx, summary, fn, in, &out); err != nil {
		r.activityFailed(ctx, "sync", ev, err)
		return false
	}
	r.s.Fund = out.Fund
	note := OrderNote{EventID: ev.EventID, Kind: string(ev.Kind), InstID: ev.InstID, Side: ev.Side, Result: string(out.Result.Status)}
	if out.Result.Reason != "" {
		note.Result += ": " + out.Result.Reason
	}
	r.s.noteOrder(note)
	applied := out.Result.Status != venue.SyncFailed
	// Only a shortfall can be fixed by adding funds (R15, R16); a refusal
	// such as leverage above the maximum would fail on every retry.
	if !applied && attempt == 0 && out.Result.Reason == copytrade.ReasonInsufficientFunds {
		r.s.PendingSyncs = append(r.s.PendingSyncs, PendingSync{Event: ev})
		r.notify(ctx, activities.NotifyInput{
			Key:     "notify/sync/" + key,
			Kind:    activities.NotifySyncFailed,
			Subject: fmt.Sprintf("Could not follow %s's %s change on %s %s: %s", r.s.TraderID, ev.Kind, ev.InstID, ev.Side, out.Result.Reason),
			Body:    out.Result.Detail + " Add funds to the copy fund and the change will be applied again.",
		})
	}
	r.publishDetails(ctx)
	return applied
}

// dropPendingSyncs forgets the syncs waiting for funds on key: retried
// later, they would apply a leverage or margin the trader has since left
// (R15, R16). Relationships that started before versionStaleSyncs keep
// them, so their histories replay unchanged.
func (r *relationship) dropPendingSyncs(ctx workflow.Context, key copytrade.PositionKey) {
	var kept []PendingSync
	for _, p := range r.s.PendingSyncs {
		if p.Event.Key() != key {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(r.s.PendingSyncs) {
		return
	}
	if workflow.GetVersion(ctx, versionStaleSyncs, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	r.s.PendingSyncs = kept
}

// retrySyncs tries the failed syncs again after the follower added funds
// (R15), in the order they failed.
func (r *relationship) retrySyncs(ctx workflow.Context) {
	var still []PendingSync
	for _, p := range r.s.PendingSyncs {
		p.Attempts++
		if !r.syncRisk(ctx, p.Event, r.s.InvestmentChanges*100+p.Attempts) {
			still = append(still, p)
		}
	}
	r.s.PendingSyncs = still
}

// copyExisting copies the trader's positions at follow time at market (R5).
func (r *relationship) copyExisting(ctx workflow.Context) {
	if err := r.mu.Lock(ctx); err != nil {
		return
	}
	defer r.mu.Unlock()
	r.s.CopiedExisting = true
	if !r.s.Settings.CopyExisting || r.s.Status != StatusActive {
		r.s.TraderBook = nil
		return
	}
	for _, p := range r.s.TraderBook {
		ev := copytrade.TraderEvent{
			EventID:    fmt.Sprintf("existing-%s-%s", p.InstID, p.Side),
			TraderID:   r.s.TraderID,
			Kind:       copytrade.EventOpen,
			InstID:     p.InstID,
			Side:       p.Side,
			MarginMode: p.MarginMode,
			Leverage:   p.Leverage,
			Margin:     p.Margin,
			Equity:     r.s.TraderEquity,
			Size:       p.Size,
		}
		r.copyOpen(ctx, ev, true)
	}
	r.s.TraderBook = nil
	r.testStopLoss(ctx)
}

// checkRisk reads the fund at the latest mark prices and tests the stop
// loss (R21: the risk sweep asked).
func (r *relationship) checkRisk(ctx workflow.Context) {
	r.s.RiskCheckPending = false
	if err := r.mu.Lock(ctx); err != nil {
		return
	}
	defer r.mu.Unlock()
	if r.s.Status != StatusActive {
		return
	}
	var fund activities.Fund
	if err := workflow.ExecuteActivity(ioCtx(ctx, "read fund at mark"), a.ReadFund, r.s.RelationshipID).Get(ctx, &fund); err != nil {
		r.logger(ctx).Error("risk check failed", "error", err)
		return
	}
	r.s.Fund = fund
	r.testStopLoss(ctx)
	r.publishDetails(ctx)
}

// testStopLoss stops the relationship when net PnL has reached the stop
// loss (R20). The caller holds the mutex.
func (r *relationship) testStopLoss(ctx workflow.Context) {
	if r.s.Status != StatusActive {
		return
	}
	if !copytrade.StopLossBreached(r.s.Fund.Figures.NetPnL, r.s.Settings.StopLoss) {
		return
	}
	r.notify(ctx, activities.NotifyInput{
		Key:     "notify/stop-loss/" + r.s.RelationshipID,
		Kind:    activities.NotifyStopLoss,
		Subject: fmt.Sprintf("Stop loss reached: you no longer follow %s", r.s.TraderID),
		Body: fmt.Sprintf("Net PnL %s USDT reached your stop loss of %s USDT. Positions are handled per your setting %s.",
			r.s.Fund.Figures.NetPnL.StringFixed(2), r.s.Settings.StopLoss.StringFixed(2), r.s.Settings.StopMode),
	})
	r.stop(ctx, StopLoss)
}

// stop moves an active relationship to stopping and handles its positions
// per the stop setting (R1, R20, R22). The caller holds the mutex.
func (r *relationship) stop(ctx workflow.Context, reason string) {
	if r.s.Status != StatusActive {
		return
	}
	r.s.Status = StatusStopping
	r.s.StopReason = reason
	r.publishStatus(ctx)
	switch r.s.Settings.StopMode {
	case copytrade.ManualClose:
		var fund activities.Fund
		if err := workflow.ExecuteActivity(orderCtx(ctx, "hand positions over to the follower's account"), a.HandOver, r.s.rel()).Get(ctx, &fund); err != nil {
			r.logger(ctx).Error("hand over failed", "error", err)
			return
		}
		r.s.Fund = fund
	case copytrade.CopyClose:
		// Positions close as the trader closes; finish once flat.
	default:
		var out activities.CloseAllOutcome
		if err := workflow.ExecuteActivity(orderCtx(ctx, "close every position at market ("+reason+")"), a.CloseAll,
			activities.CloseAllInput{Rel: r.s.rel(), Reason: reason}).Get(ctx, &out); err != nil {
			r.logger(ctx).Error("close all failed", "error", err)
			return
		}
		r.s.Fund = out.Fund
	}
	if len(r.s.Fund.Positions) == 0 {
		r.finish(ctx)
	}
	r.wakeUp()
}

// finish releases what is left in the copy fund and ends the relationship
// (R19). The caller holds the mutex.
func (r *relationship) finish(ctx workflow.Context) {
	amount := r.s.Released
	if err := workflow.ExecuteActivity(ioCtx(ctx, "release the copy fund"), a.Release, r.s.rel()).Get(ctx, &amount); err != nil {
		r.logger(ctx).Error("release failed", "error", err)
		return
	}
	r.s.Released = amount
	r.s.Status = StatusEnded
	r.s.Fund.Figures = copytrade.Figures{}
	r.publishStatus(ctx)
	r.notify(ctx, activities.NotifyInput{
		Key:     "notify/released/" + r.s.RelationshipID,
		Kind:    activities.NotifyReleased,
		Subject: fmt.Sprintf("Copy trading with %s ended: %s USDT released", r.s.TraderID, amount.StringFixed(2)),
		Body:    fmt.Sprintf("%s USDT went back to your available balance.", amount.StringFixed(8)),
	})
	r.wakeUp()
}

// notify sends a notification without holding up the trading path: the
// activity runs on its own, and the run waits for all of them only before
// it closes or continues as new.
func (r *relationship) notify(ctx workflow.Context, n activities.NotifyInput) {
	n.FollowerID = r.s.FollowerID
	n.RelationshipID = r.s.RelationshipID
	f := workflow.ExecuteActivity(notifyCtx(ctx, "notify: "+n.Kind), a.Notify, n)
	r.notifying++
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := f.Get(ctx, nil); err != nil {
			r.logger(ctx).Error("notification failed", "notification_key", n.Key, "error", err)
		}
		r.notifying--
	})
}

// notificationsSent waits for the notifications in flight.
func (r *relationship) notificationsSent(ctx workflow.Context) error {
	return workflow.Await(ctx, func() bool { return r.notifying == 0 })
}

// activityFailed handles an activity error that retries did not fix. Order
// activities retry without limit, so this is a cancellation or a refusal:
// the event is recorded as not copied and the relationship goes on.
func (r *relationship) activityFailed(ctx workflow.Context, what string, ev copytrade.TraderEvent, err error) {
	r.s.Counters.OrdersFailed++
	r.s.noteOrder(OrderNote{EventID: ev.EventID, Kind: string(ev.Kind), InstID: ev.InstID, Side: ev.Side, Result: "error: " + err.Error()})
	r.logger(ctx).Error(what+" failed", logTraderEvent, ev.EventID,
		logClientOrderID, activities.ClientOrderID(r.s.RelationshipID, ev.EventID), "error", err)
}

// shouldContinueAsNew reports whether this run's history is long enough to
// hand over to a new run, and nothing is mid-flight.
func (r *relationship) shouldContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	if info.GetContinueAsNewSuggested() {
		return true
	}
	length := info.GetCurrentHistoryLength()
	if length != r.taskLength {
		r.taskLength, r.appliedInTask = length, 0
	}
	limit := r.s.Config.HistoryLimit
	if limit == 0 {
		return false
	}
	if workflow.GetVersion(ctx, versionHistoryEstimate, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return length >= limit
	}
	// The length is read once per workflow task, and one task can apply
	// hundreds of held events: count about two history events (a local
	// activity marker, at times a notification or a status command) for
	// each event applied since the task started.
	return length+2*r.appliedInTask >= limit
}

// continueAsNew carries the whole state into a new run, after every update
// handler has answered and every delivered signal is in the state.
func (r *relationship) continueAsNew(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	if err := r.notificationsSent(ctx); err != nil {
		return err
	}
	r.drainSignals(ctx)
	r.s.Counters.ContinuedAsNew++
	return workflow.NewContinueAsNewError(ctx, WorkflowName, Input{FollowerID: r.s.FollowerID, TraderID: r.s.TraderID, State: &r.s})
}

// publishStatus records a status change everywhere an operator or the
// product looks: the search attribute, the UI details and the projection.
func (r *relationship) publishStatus(ctx workflow.Context) {
	r.logger(ctx).Info("relationship status", "status", r.s.Status, "stop_reason", r.s.StopReason,
		"follower_id", r.s.FollowerID, "trader_id", r.s.TraderID)
	if err := workflow.UpsertTypedSearchAttributes(ctx, SearchCopyStatus.ValueSet(string(r.s.Status))); err != nil {
		r.logger(ctx).Error("upsert CopyStatus failed", "error", err)
	}
	r.publishDetails(ctx)
	if r.s.RelationshipID == "" || r.s.Status == StatusEnded || r.s.Status == StatusRefused || r.s.Status == StatusAbandoned {
		// Release ends the projection row itself; refused and abandoned
		// relationships never had one.
		return
	}
	err := workflow.ExecuteActivity(ioCtx(ctx, "record status "+string(r.s.Status)), a.SetStatus,
		activities.StatusInput{RelationshipID: r.s.RelationshipID, Status: string(r.s.Status), Reason: r.s.StopReason}).Get(ctx, nil)
	if err != nil {
		r.logger(ctx).Error("record status failed", "error", err)
	}
}

func (r *relationship) publishDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, r.summary())
}
