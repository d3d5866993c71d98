package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"smartcopy/copytrade"
)

// HistoryProfile is what a sample of relationship histories says about one
// system: how many history events a copied trader event costs each
// follower, of which types, and where the time went between publish and
// the order, as the server timestamped it.
type HistoryProfile struct {
	System  string `json:"system"`
	Sampled int    `json:"sampled"`
	// EventsPerCopy is history events added during the measured steps
	// divided by the steps, per relationship, averaged over the sample.
	EventsPerCopy float64 `json:"events_per_copy"`
	// ByType is the same per event type.
	ByType map[string]float64 `json:"by_type"`
	// Phases are per (relationship, measured event), milliseconds:
	// publish start -> signal recorded -> workflow task started ->
	// completed -> activity started -> completed -> the workflow task that
	// takes the result completed.
	Phases  map[string]Dist `json:"phases"`
	Problem string          `json:"problem,omitempty"`
}

// phase names, in timeline order. Phases 4 to 6 exist only where the copy
// runs as a regular activity; a local activity runs inside the workflow
// task (phase 3) and leaves a marker.
var phaseNames = []string{
	"1 publish start -> signal in history",
	"2 signal -> workflow task started",
	"3 workflow task started -> completed",
	"4 workflow task completed -> activity started",
	"5 activity started -> completed",
	"6 activity completed -> next workflow task completed",
	"7 publish start -> copy in history",
}

// historySample picks up to k followers spread over the population.
func historySample(p *population, k int) []*follower {
	if k <= 0 || len(p.Followers) == 0 {
		return nil
	}
	k = min(k, len(p.Followers))
	out := make([]*follower, 0, k)
	for i := range k {
		out = append(out, p.Followers[i*len(p.Followers)/k])
	}
	return out
}

// historyLengths reads the current history length of each sampled
// relationship.
func (b *bench) historyLengths(ctx context.Context, sys copier, sample []*follower) (map[string]int64, error) {
	out := make(map[string]int64, len(sample))
	for _, f := range sample {
		id := sys.WorkflowID(f)
		desc, err := b.st.pubClient.DescribeWorkflow(ctx, id, "")
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", id, err)
		}
		out[id] = desc.RawResponse.GetWorkflowExecutionInfo().GetHistoryLength()
	}
	return out, nil
}

// historyProfile reads the sampled histories after the run. before holds
// the lengths read after the warm-up; measured is the number of measured
// steps.
func (b *bench) historyProfile(ctx context.Context, sys copier, sample []*follower, before map[string]int64, measured int) HistoryProfile {
	hp := HistoryProfile{System: sys.Name(), Sampled: len(sample), ByType: map[string]float64{}, Phases: map[string]Dist{}}
	phases := map[string][]float64{}
	var added []float64
	types := map[string]int{}
	dc := converter.GetDefaultDataConverter()
	for _, f := range sample {
		id := sys.WorkflowID(f)
		var events []*historypb.HistoryEvent
		it := b.st.pubClient.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				hp.Problem = fmt.Sprintf("read history of %s: %v", id, err)
				return hp
			}
			events = append(events, e)
		}
		from := before[id]
		if int64(len(events)) < from {
			hp.Problem = fmt.Sprintf("%s continued as new during the run; its count is left out", id)
			continue
		}
		added = append(added, float64(int64(len(events))-from)/float64(max(measured, 1)))
		for _, e := range events[from:] {
			types[strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_")]++
		}
		for i, e := range events {
			if e.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED || int64(i) < from {
				continue
			}
			var ev copytrade.TraderEvent
			if err := dc.FromPayloads(e.GetWorkflowExecutionSignaledEventAttributes().GetInput(), &ev); err != nil {
				continue
			}
			t0, ok := b.t0[ev.EventID]
			if !ok {
				continue
			}
			timeline(events, i, t0, phases)
		}
	}
	if len(added) > 0 {
		var sum float64
		for _, v := range added {
			sum += v
		}
		hp.EventsPerCopy = round3(sum / float64(len(added)))
	}
	for t, n := range types {
		hp.ByType[t] = round3(float64(n) / float64(max(len(added), 1)) / float64(max(measured, 1)))
	}
	for name, v := range phases {
		hp.Phases[name] = distOf(v)
	}
	return hp
}

// timeline follows one signal (events[i]) through the history to the copy
// it caused, a regular activity or a local activity's marker, and adds its
// phases.
func timeline(events []*historypb.HistoryEvent, i int, t0 time.Time, phases map[string][]float64) {
	at := func(e *historypb.HistoryEvent) time.Time { return e.GetEventTime().AsTime() }
	find := func(from int, ok func(*historypb.HistoryEvent) bool) int {
		for j := from; j < len(events); j++ {
			if ok(events[j]) {
				return j
			}
		}
		return -1
	}
	is := func(t enumspb.EventType) func(*historypb.HistoryEvent) bool {
		return func(e *historypb.HistoryEvent) bool { return e.GetEventType() == t }
	}
	add := func(name string, d time.Duration) { phases[name] = append(phases[name], ms(d)) }
	sig := events[i]
	wfts := find(i+1, is(enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED))
	if wfts < 0 {
		return
	}
	wftc := find(wfts+1, is(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED))
	if wftc < 0 {
		return
	}
	add(phaseNames[0], at(sig).Sub(t0))
	add(phaseNames[1], at(events[wfts]).Sub(at(sig)))
	add(phaseNames[2], at(events[wftc]).Sub(at(events[wfts])))
	if wftc+1 < len(events) && events[wftc+1].GetEventType() == enumspb.EVENT_TYPE_MARKER_RECORDED {
		add(phaseNames[6], at(events[wftc]).Sub(t0))
		return
	}
	sched := find(wftc+1, is(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED))
	if sched < 0 {
		return
	}
	schedID := events[sched].GetEventId()
	started := find(sched+1, func(e *historypb.HistoryEvent) bool {
		return e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED &&
			e.GetActivityTaskStartedEventAttributes().GetScheduledEventId() == schedID
	})
	done := find(sched+1, func(e *historypb.HistoryEvent) bool {
		return e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED &&
			e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId() == schedID
	})
	if started < 0 || done < 0 {
		return
	}
	add(phaseNames[3], at(events[started]).Sub(at(events[wftc])))
	add(phaseNames[4], at(events[done]).Sub(at(events[started])))
	if next := find(done+1, is(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)); next >= 0 {
		add(phaseNames[5], at(events[next]).Sub(at(events[done])))
	}
	add(phaseNames[6], at(events[done]).Sub(t0))
}

// sortedKeys of a map, for printing in a stable order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
