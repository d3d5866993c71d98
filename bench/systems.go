package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"smartcopy/activities"
	"smartcopy/api"
	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/venue"
	"smartcopy/workflows"
)

// copier is one way of copying a trader event to every follower: smartcopy
// itself or a baseline. Publish returns the event as recorded (with its
// sequence and the trader's size before a close).
type copier interface {
	Name() string
	Describe() string
	Pop() *population
	Publish(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, error)
	// Async systems copy after Publish returns: the bench polls for the
	// orders. Synchronous ones have placed every order when it returns.
	Async() bool
	// WorkflowID of a follower's relationship, "" without workflows.
	WorkflowID(f *follower) string
}

// smartcopySystem is the product: api.Publisher fanning out to the
// relationship workflows, run by workers built as system.NewWorker builds
// them.
type smartcopySystem struct {
	pop       *population
	publisher *api.Publisher
}

func (s *smartcopySystem) Name() string { return "smartcopy" }
func (s *smartcopySystem) Describe() string {
	return fmt.Sprintf("api.Publisher (signal-with-start, concurrency %d) -> CopyRelationship workflows -> CopyOpen/CopyClose/SyncLeverage activities", s.publisher.Concurrency)
}
func (s *smartcopySystem) Pop() *population { return s.pop }
func (s *smartcopySystem) Async() bool      { return true }
func (s *smartcopySystem) WorkflowID(f *follower) string {
	return workflows.WorkflowID(f.ID, s.pop.TraderID)
}

func (s *smartcopySystem) Publish(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, error) {
	rep, err := s.publisher.Publish(withPhase(ctx, "publish"), ev)
	if err != nil {
		return copytrade.TraderEvent{}, err
	}
	if rep.Delivered != len(s.pop.Followers) {
		return rep.Event, fmt.Errorf("smartcopy delivered %s to %d relationships, want %d (ended %d)",
			ev.EventID, rep.Delivered, len(s.pop.Followers), rep.Ended)
	}
	return rep.Event, nil
}

// naiveSystem is the naive design (see naive.go).
type naiveSystem struct {
	pop         *population
	store       *store.Store
	temporal    client.Client
	taskQueue   string
	concurrency int
}

func (s *naiveSystem) Name() string { return "naive" }
func (s *naiveSystem) Describe() string {
	return fmt.Sprintf("record event, then signal-with-start per follower (concurrency %d) -> minimal workflow -> one regular activity (mark price, size, PlaceOrder)", s.concurrency)
}
func (s *naiveSystem) Pop() *population { return s.pop }
func (s *naiveSystem) Async() bool      { return true }
func (s *naiveSystem) WorkflowID(f *follower) string {
	return naiveWorkflowID(f.ID, s.pop.TraderID)
}

func (s *naiveSystem) Publish(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, error) {
	ctx = withPhase(ctx, "publish")
	recorded, rels, err := recordAndList(ctx, s.store, ev)
	if err != nil {
		return recorded, err
	}
	err = fanOut(rels, s.concurrency, func(rel store.Relationship) error {
		_, err := s.temporal.SignalWithStartWorkflow(ctx, naiveWorkflowID(rel.FollowerID, rel.TraderID), workflows.SignalTraderEvent, recorded,
			client.StartWorkflowOptions{TaskQueue: s.taskQueue}, naiveWorkflowName, naiveInput{Rel: relRef(rel), Investment: rel.Investment})
		return err
	})
	return recorded, err
}

// floorSystem writes the orders straight into PostgreSQL: the baselines'
// copyEvent (mark price, sizing, venue.PlaceOrder) for every follower,
// concurrently, with no orchestration at all.
type floorSystem struct {
	pop         *population
	store       *store.Store
	venue       venue.Venue
	rec         *recorder
	concurrency int
}

func (s *floorSystem) Name() string { return "floor" }
func (s *floorSystem) Describe() string {
	return fmt.Sprintf("record event, then per follower mark price + size + venue.PlaceOrder in-process (concurrency %d), no Temporal", s.concurrency)
}
func (s *floorSystem) Pop() *population            { return s.pop }
func (s *floorSystem) Async() bool                 { return false }
func (s *floorSystem) WorkflowID(*follower) string { return "" }

func (s *floorSystem) Publish(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, error) {
	recorded, rels, err := recordAndList(withPhase(ctx, "publish"), s.store, ev)
	if err != nil {
		return recorded, err
	}
	err = fanOut(rels, s.concurrency, func(rel store.Relationship) error {
		tr := newTrace("floor copyEvent")
		start := time.Now()
		_, err := copyEvent(withTrace(ctx, tr), s.venue, relRef(rel), rel.Investment, recorded)
		s.rec.activityDone(tr, time.Since(start))
		return err
	})
	return recorded, err
}

// directSystem calls smartcopy's own activity code (CopyOpen, CopyClose,
// SyncLeverage, with their fund read-back) for every follower, in-process
// and concurrently, with no Temporal: the database work of smartcopy's
// design without its orchestration.
type directSystem struct {
	pop         *population
	store       *store.Store
	acts        *activities.Activities
	rec         *recorder
	concurrency int
}

func (s *directSystem) Name() string { return "direct" }
func (s *directSystem) Describe() string {
	return fmt.Sprintf("record event, then smartcopy's activity functions called in-process per follower (concurrency %d), no Temporal", s.concurrency)
}
func (s *directSystem) Pop() *population            { return s.pop }
func (s *directSystem) Async() bool                 { return false }
func (s *directSystem) WorkflowID(*follower) string { return "" }

func (s *directSystem) Publish(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, error) {
	recorded, rels, err := recordAndList(withPhase(ctx, "publish"), s.store, ev)
	if err != nil {
		return recorded, err
	}
	err = fanOut(rels, s.concurrency, func(rel store.Relationship) error {
		ref := relRef(rel)
		tr := newTrace("direct " + string(recorded.Kind))
		actx := withTrace(ctx, tr)
		start := time.Now()
		var err error
		switch recorded.Kind {
		case copytrade.EventOpen:
			_, err = s.acts.CopyOpen(actx, activities.OpenInput{Rel: ref, Event: recorded, Investment: rel.Investment})
		case copytrade.EventClose:
			_, err = s.acts.CopyClose(actx, activities.CloseInput{Rel: ref, Event: recorded})
		case copytrade.EventLeverage:
			_, err = s.acts.SyncLeverage(actx, activities.SyncInput{Rel: ref, Event: recorded,
				Key: activities.ClientOrderID(rel.ID, recorded.EventID)})
		}
		s.rec.activityDone(tr, time.Since(start))
		return err
	})
	return recorded, err
}

// recordAndList is what every publisher does first: record the event (its
// sequence, the trader's book) and list the live followers.
func recordAndList(ctx context.Context, s *store.Store, ev copytrade.TraderEvent) (copytrade.TraderEvent, []store.Relationship, error) {
	recorded, _, err := s.RecordTraderEvent(ctx, ev)
	if err != nil {
		return recorded, nil, err
	}
	rels, err := s.LiveFollowers(ctx, ev.TraderID)
	return recorded, rels, err
}

func relRef(rel store.Relationship) activities.RelRef {
	return activities.RelRef{RelationshipID: rel.ID, WorkflowID: rel.WorkflowID, FollowerID: rel.FollowerID, TraderID: rel.TraderID}
}

// fanOut runs fn for every relationship, at most concurrency at a time,
// and joins the errors.
func fanOut(rels []store.Relationship, concurrency int, fn func(store.Relationship) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, max(concurrency, 1))
	)
	for _, rel := range rels {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(rel); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", rel.ID, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
