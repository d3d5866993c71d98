package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/workflows"
)

// suggestedHistoryLength is the server's default point for suggesting
// continue-as-new (limit.historyCount.suggestContinueAsNew).
const suggestedHistoryLength = 4096

// A relationship that runs for months: more than 10,000 trader events
// through one relationship on the real dev server, published concurrently
// (so they arrive out of order), with duplicates injected both through the
// publisher (an upstream retry) and straight at the workflow after it has
// continued as new. Every event is applied exactly once, in the trader's
// order (R24), and no run's history goes far past the server's suggestion.
func TestTenThousandEventsThroughOneRelationship(t *testing.T) {
	// 10,200 events take about four minutes on two cores: the relationship
	// applies them one at a time, in order, each an order placed and
	// recorded. SMARTCOPY_LONGRUN_EVENTS sets another length.
	n := 10_200
	if v := os.Getenv("SMARTCOPY_LONGRUN_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("SMARTCOPY_LONGRUN_EVENTS: %v", err)
		}
	}
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, f := e.ID("trader"), e.ID("marathon")
	setup(t, e, trader, map[string]string{f: "100000"})
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("50000")})
	must(t, err)

	// Each event is an order: opens of 0.1 BTC-equivalent contracts and
	// full closes, alternating, so the follower's fund never runs dry.
	event := func(i int) copytrade.TraderEvent {
		if i%2 == 0 {
			return openEv(e, trader, fmt.Sprintf("o%d", i), "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "100", "60000", "8")
		}
		return copytrade.TraderEvent{EventID: e.ID(fmt.Sprintf("c%d", i)), TraderID: trader, Kind: copytrade.EventClose,
			InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Price: d("60000"), Size: d("8")}
	}
	// Publishing is sequential per event id order but runs four publishers
	// at once; an open and its close must reach the trader's book in order,
	// so each publisher takes a pair.
	start := time.Now()
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		duplicates int
		publishErr error
	)
	pairs := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range pairs {
				for _, ev := range []copytrade.TraderEvent{event(i), event(i + 1)} {
					if _, err := e.Publisher.Publish(ctx, ev); err != nil {
						mu.Lock()
						publishErr = err
						mu.Unlock()
					}
				}
				if i%100 == 0 {
					// An upstream retry of the same close.
					if _, err := e.Publisher.Publish(ctx, event(i+1)); err == nil {
						mu.Lock()
						duplicates++
						mu.Unlock()
					}
				}
			}
		}()
	}
	for i := 0; i < n; i += 2 {
		pairs <- i
	}
	close(pairs)
	wg.Wait()
	must(t, publishErr)
	published := time.Since(start)

	book, err := e.Store.TraderBook(ctx, trader)
	must(t, err)
	// Applying trails publishing; how far depends on the machine. Watch
	// the orders in PostgreSQL rather than query the workflow, which
	// answers queries only between its workflow tasks.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var orders int
		must(t, e.Pool.QueryRow(ctx, `select count(*) from orders where relationship_id = $1`, res.RelationshipID).Scan(&orders))
		if orders >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d orders after 10 minutes", orders, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.WaitApplied(ctx, f, trader, book.LastSeq)
	applied := time.Since(start)

	// Events already applied, delivered again straight to the workflow
	// after it has continued as new: the watermark carried through
	// continue-as-new recognises them. A last event shows they were
	// processed.
	for _, seq := range []int64{1, 2, book.LastSeq / 2, book.LastSeq} {
		var payload []byte
		must(t, e.Pool.QueryRow(ctx, `select payload from trader_events where trader_id = $1 and seq = $2`, trader, seq).Scan(&payload))
		var ev copytrade.TraderEvent
		must(t, json.Unmarshal(payload, &ev))
		must(t, e.Client.SignalWorkflow(ctx, workflows.WorkflowID(f, trader), "", workflows.SignalTraderEvent, ev))
		duplicates++
	}
	n++
	rep, err := e.Publisher.Publish(ctx, event(n-1))
	must(t, err)
	st := e.WaitApplied(ctx, f, trader, rep.Event.Seq)
	if st.Counters.EventsApplied != int64(n) {
		t.Errorf("applied %d events, want %d", st.Counters.EventsApplied, n)
	}
	// Duplicates are recognised by the watermark, or arrive while the
	// original waits in PostgreSQL (deferred, read back once); either way
	// none is applied twice, which the orders below show.
	// An event read back from PostgreSQL before its own signal arrives
	// makes that signal a duplicate too, so only the four injected after
	// everything was applied are certain.
	if st.Counters.Duplicates < 4 {
		t.Errorf("ignored %d duplicates, want at least the 4 injected after everything was applied (%d injected in all)", st.Counters.Duplicates, duplicates)
	}
	var orders, doubled int
	must(t, e.Pool.QueryRow(ctx, `select count(*) from orders where relationship_id = $1`, res.RelationshipID).Scan(&orders))
	must(t, e.Pool.QueryRow(ctx, `select count(*) from (select trader_event_id from orders where relationship_id = $1
		group by trader_event_id having count(*) > 1) x`, res.RelationshipID).Scan(&doubled))
	if orders != n || doubled != 0 {
		t.Errorf("orders: %d for %d events, %d events with more than one order", orders, n, doubled)
	}
	if st.Counters.OrdersFailed != 0 {
		t.Errorf("%d copies failed", st.Counters.OrdersFailed)
	}

	// Walk the runs: every one but the last ended in continue-as-new, and
	// none went far past the suggestion.
	runIDs := []string{res.RelationshipID}
	maxLen := 0
	for i := 0; i < len(runIDs); i++ {
		h, err := testenv.History(ctx, e.Client, workflows.WorkflowID(f, trader), runIDs[i])
		must(t, err)
		maxLen = max(maxLen, len(h.Events))
		if next := h.Events[len(h.Events)-1].GetWorkflowExecutionContinuedAsNewEventAttributes(); next != nil {
			runIDs = append(runIDs, next.GetNewExecutionRunId())
		}
	}
	if int64(len(runIDs)-1) != st.Counters.ContinuedAsNew {
		t.Errorf("%d runs but %d continue-as-new counted", len(runIDs), st.Counters.ContinuedAsNew)
	}
	if maxLen > suggestedHistoryLength+200 {
		t.Errorf("a run's history reached %d events, past the suggestion of %d by more than 200", maxLen, suggestedHistoryLength)
	}
	audit, err := e.Store.Audit(ctx)
	must(t, err)
	if !audit.OK() {
		t.Errorf("audit: %v", audit.Differences)
	}
	t.Logf("events %d, published in %s, all applied in %s (%.0f events/s); continue-as-new %d, longest run %d history events (%.1f per event); "+
		"duplicates injected %d, recognised %d, applied 0; events deferred to PostgreSQL %d",
		n, published.Round(time.Millisecond), applied.Round(time.Millisecond), float64(n)/applied.Seconds(),
		st.Counters.ContinuedAsNew, maxLen, float64(maxLen)/float64(n/len(runIDs)), duplicates, st.Counters.Duplicates, st.Counters.DeferredToStore)
}
