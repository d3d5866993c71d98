package main

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The server probe splits the Temporal server's CPU per copy into its
// parts with a workflow that does nothing but receive signals: what one
// signal-with-start and its workflow task cost, what a plain signal and its
// workflow task cost, and what a signal-with-start costs when no worker
// polls (the workflow task is scheduled but never dispatched). The copy
// path's own figures (server CPU per copy) are then compared against
// these.

const probeWorkflowName = "BenchProbe"

func probeWorkflow(ctx workflow.Context) error {
	ch := workflow.GetSignalChannel(ctx, "probe")
	for {
		ch.Receive(ctx, nil)
	}
}

// ProbeResult is one operation's cost, per operation.
type ProbeResult struct {
	Operation string  `json:"operation"`
	Count     int     `json:"count"`
	WallMS    float64 `json:"wall_ms"`
	ServerMS  float64 `json:"temporal_server_cpu_ms_per_op"`
	BenchMS   float64 `json:"bench_process_cpu_ms_per_op"`
	CallP50MS float64 `json:"call_p50_ms"`
}

func (b *bench) probeServer(ctx context.Context, k int) ([]ProbeResult, error) {
	tq := "bench-probe-" + b.runID
	c, err := b.st.dial(ctx)
	if err != nil {
		return nil, err
	}
	w := worker.New(c, tq, b.st.workerOptions())
	w.RegisterWorkflowWithOptions(probeWorkflow, workflow.RegisterOptions{Name: probeWorkflowName})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start probe worker: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			w.Stop()
		}
	}()
	ids := make([]string, k)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-probe/%s/%d", b.runID, i)
	}
	pub := b.st.pubClient
	var out []ProbeResult
	// A probe workflow task is counted when the worker has executed it;
	// an operation is over when all k have been, and the workers are idle.
	const tasksDone = "workflow_task_execution_latency workflow_type=" + probeWorkflowName
	measure := func(op string, call func(id string) error, waitWorker bool) error {
		b.st.sink.reset()
		cpuA := b.cpu.snap(ctx)
		start := time.Now()
		lat := make([]float64, k)
		err := parallel(k, b.opts.concurrency, func(i int) error {
			t := time.Now()
			err := call(ids[i])
			lat[i] = ms(time.Since(t))
			return err
		})
		if err != nil {
			return fmt.Errorf("probe %s: %w", op, err)
		}
		if waitWorker {
			deadline := time.Now().Add(b.opts.eventTimeout)
			for b.st.sink.count(tasksDone) < k && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			if n := b.st.sink.count(tasksDone); n < k {
				return fmt.Errorf("probe %s: %d of %d workflow tasks ran within %s", op, n, k, b.opts.eventTimeout)
			}
			b.waitIdle(ctx)
		} else {
			time.Sleep(500 * time.Millisecond)
		}
		wall := time.Since(start)
		p := b.cpu.between(cpuA, b.cpu.snap(ctx))
		out = append(out, ProbeResult{Operation: op, Count: k, WallMS: ms(wall),
			ServerMS: round3(p.ServerMS / float64(k)), BenchMS: round3(p.BenchMS / float64(k)), CallP50MS: distOf(lat).P50})
		return nil
	}
	start := func(id string) error {
		_, err := pub.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, probeWorkflowName)
		return err
	}
	sws := func(id string) error {
		_, err := pub.SignalWithStartWorkflow(ctx, id, "probe", nil, client.StartWorkflowOptions{TaskQueue: tq}, probeWorkflowName)
		return err
	}
	signal := func(id string) error { return pub.SignalWorkflow(ctx, id, "", "probe", nil) }
	if err := measure("start workflow + first workflow task", start, true); err != nil {
		return out, err
	}
	if err := measure("signal-with-start + workflow task", sws, true); err != nil {
		return out, err
	}
	if err := measure("signal + workflow task", signal, true); err != nil {
		return out, err
	}
	w.Stop()
	stopped = true
	if err := measure("signal-with-start, no worker polling", sws, false); err != nil {
		return out, err
	}
	if b.st.temporal == nil {
		// A given server keeps what the bench leaves; the probe's
		// workflows would wait for a worker forever.
		for _, id := range ids {
			_ = pub.TerminateWorkflow(ctx, id, "", "bench probe done")
		}
	}
	return out, nil
}
