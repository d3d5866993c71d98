package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/workflows"
)

// Publisher publishes a lead trader's events to every relationship that
// follows the trader. Upstream services (the exchange's trade feed) import
// this package and call Publish once per trader event.
//
// Where the follower list comes from: the relationships projection in
// PostgreSQL. Publish first records the event there, which gives it the
// trader's next sequence number (the order every relationship applies
// events in, R24) and updates the trader's book (used to fill close and
// margin events and to copy existing positions, R5). The projection is
// written by the relationship workflows themselves at follow and at every
// status change, so it lists exactly the relationships that can still act
// on an event; a per-trader workflow owning its followers would put every
// publish through one workflow's history, a bottleneck for a popular
// trader.
type Publisher struct {
	Temporal  client.Client
	Store     *store.Store
	TaskQueue string
	// Concurrency bounds the signals in flight for one event.
	Concurrency int
}

// NewPublisher builds a Publisher on the default task queue.
func NewPublisher(c client.Client, s *store.Store) *Publisher {
	return &Publisher{Temporal: c, Store: s, TaskQueue: workflows.TaskQueue, Concurrency: 64}
}

// PublishReport says what one Publish did.
type PublishReport struct {
	// Event is the event as recorded: with its sequence number and the
	// fields filled from the trader's book.
	Event copytrade.TraderEvent
	// Duplicate is true when the event id was published before; it is
	// delivered again (harmless: relationships apply it once).
	Duplicate bool
	Delivered int
	// Ended counts relationships that ended between the look-up and the
	// signal; they are not restarted.
	Ended int
}

// Publish records a trader event and signals it to every live relationship
// of the trader with signal-with-start. Publishing the same event again (an
// upstream retry) is harmless. A bad event is refused with a FieldError and
// nothing is recorded or sent (R25).
//
// Publish does not retry on its own. Each Temporal call already retries
// transient failures within its deadline (the fault suite's server
// restarts are absorbed there); what still fails, a PostgreSQL error or
// deliveries that did not go through, is returned, the report counting
// what was delivered. The caller publishes the same event again until it
// succeeds: the event is recorded once, relationships that had it drop
// the second delivery, and the caller keeps the retry budget it knows
// (an upstream feed redelivers until it acknowledges).
func (p *Publisher) Publish(ctx context.Context, ev copytrade.TraderEvent) (PublishReport, error) {
	if fe := ev.Validate(); fe != nil {
		return PublishReport{}, fe
	}
	if ev.At.IsZero() {
		// Upstream should say when the trader acted; when it does not,
		// publishing is the earliest time known, and the worker's
		// event-to-fill latency is measured from it.
		ev.At = time.Now().UTC()
	}
	recorded, fresh, err := p.Store.RecordTraderEvent(ctx, ev)
	if err != nil {
		return PublishReport{}, err
	}
	rep := PublishReport{Event: recorded, Duplicate: !fresh}
	rels, err := p.Store.LiveFollowers(ctx, ev.TraderID)
	if err != nil {
		return rep, fmt.Errorf("publish %s: list followers: %w", ev.EventID, err)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, max(p.Concurrency, 1))
	)
	for _, rel := range rels {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ended, err := p.signal(ctx, rel.FollowerID, recorded)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: %w", rel.WorkflowID, err))
			case ended:
				rep.Ended++
			default:
				rep.Delivered++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return rep, fmt.Errorf("publish %s: %d of %d deliveries failed: %w", ev.EventID, len(errs), len(rels), errors.Join(errs...))
	}
	return rep, nil
}

// signal delivers one event with signal-with-start. The reuse policy
// RejectDuplicate means an ended relationship is never started again by a
// late event (the default, AllowDuplicate, would start a new run); a
// running one simply gets the signal.
func (p *Publisher) signal(ctx context.Context, followerID string, ev copytrade.TraderEvent) (ended bool, err error) {
	_, err = p.Temporal.SignalWithStartWorkflow(ctx, workflows.WorkflowID(followerID, ev.TraderID), workflows.SignalTraderEvent, ev,
		client.StartWorkflowOptions{
			TaskQueue:                p.TaskQueue,
			WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.SearchTraderID.ValueSet(ev.TraderID),
				workflows.SearchFollowerID.ValueSet(followerID),
				workflows.SearchCopyStatus.ValueSet(string(workflows.StatusPending)),
			),
		}, workflows.WorkflowName, workflows.Input{FollowerID: followerID, TraderID: ev.TraderID})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return true, nil
	}
	return false, err
}
