package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/workflows"
)

// SetupResult is how long it took to put N followers behind each trader.
type SetupResult struct {
	ServerMS   float64            `json:"server_ms"`
	DatabaseMS float64            `json:"database_ms"`
	DepositsMS float64            `json:"deposits_ms"`
	FollowsMS  map[string]float64 `json:"follows_ms"`
	// FollowLatency is api.Client.Follow's latency (update-with-start,
	// smartcopy only).
	FollowLatency Dist    `json:"follow_latency"`
	TotalMS       float64 `json:"total_ms"`
}

// setup registers the traders, deposits for every follower and follows:
// smartcopy through api.Client.Follow (update-with-start on the
// relationship workflow), the baselines straight through store.Follow,
// which is the database work of smartcopy's Follow activity.
func (b *bench) setup(ctx context.Context) (SetupResult, error) {
	res := SetupResult{ServerMS: b.st.setupTimes["temporal"], DatabaseMS: b.st.setupTimes["database"], FollowsMS: map[string]float64{}}
	began := time.Now()
	for _, sys := range b.systems {
		if err := b.st.store.RegisterTrader(ctx, sys.Pop().TraderID, traderEquity); err != nil {
			return res, err
		}
	}
	var all []*follower
	for _, sys := range b.systems {
		all = append(all, sys.Pop().Followers...)
	}
	start := time.Now()
	err := parallel(len(all), b.opts.setupConcurrency, func(i int) error {
		f := all[i]
		_, err := b.st.store.Deposit(ctx, f.ID, f.Investment.Add(decimal.NewFromInt(100)), "bench/"+f.ID)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("deposits: %w", err)
	}
	res.DepositsMS = ms(time.Since(start))
	b.logf("setup: %d deposits in %.1f s\n", len(all), res.DepositsMS/1000)

	var followsDone time.Time
	for _, sys := range b.systems {
		pop := sys.Pop()
		start := time.Now()
		var mu sync.Mutex
		var lat []float64
		err := parallel(len(pop.Followers), b.opts.setupConcurrency, func(i int) error {
			f := pop.Followers[i]
			req := copytrade.FollowRequest{FollowerID: f.ID, TraderID: pop.TraderID, Investment: f.Investment}
			if sys.Name() == "smartcopy" {
				t := time.Now()
				r, err := b.st.api.Follow(ctx, req)
				if err != nil {
					return err
				}
				mu.Lock()
				lat = append(lat, ms(time.Since(t)))
				mu.Unlock()
				f.RelationshipID, f.WorkflowID = r.RelationshipID, workflows.WorkflowID(f.ID, pop.TraderID)
				return nil
			}
			f.RelationshipID = f.ID + "-rel"
			f.WorkflowID = sys.WorkflowID(f)
			if f.WorkflowID == "" {
				f.WorkflowID = "bench-" + sys.Name() + "/" + f.ID
			}
			_, err := b.st.acts.Store.Follow(ctx, store.FollowParams{RelationshipID: f.RelationshipID, WorkflowID: f.WorkflowID, Request: req})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("%s follows: %w", sys.Name(), err)
		}
		for _, f := range pop.Followers {
			pop.byRel[f.RelationshipID] = f
		}
		res.FollowsMS[sys.Name()] = ms(time.Since(start))
		if len(lat) > 0 {
			res.FollowLatency = distOf(lat)
			followsDone = time.Now()
		}
		b.logf("setup: %d %s follows in %.1f s (%.0f/s)\n", len(pop.Followers), sys.Name(), res.FollowsMS[sys.Name()]/1000,
			float64(len(pop.Followers))/time.Since(start).Seconds())
	}
	// Before db8fcc6 every relationship's follow-timeout timer fired
	// FollowTimeout after its start even though the follow came, adding a
	// workflow task per relationship; -follow-timeout lets them fire
	// before measuring such code.
	if b.opts.followTimeout > 0 {
		if wait := time.Until(followsDone.Add(b.opts.followTimeout + time.Second)); wait > 0 {
			b.logf("setup: waiting %.0f s for the relationships' follow-timeout timers to fire\n", wait.Seconds())
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
	}
	b.waitIdle(ctx)
	res.TotalMS = ms(time.Since(began))
	return res, nil
}

// parallel runs fn(0..n-1), at most concurrency at a time, and returns the
// first error.
func parallel(n, concurrency int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, max(concurrency, 1))
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}
