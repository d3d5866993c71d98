package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// bench is one run.
type bench struct {
	opts    options
	st      *stack
	runID   string
	log     io.Writer
	script  []step
	inst    map[string]copytrade.Instrument
	systems []copier
	cpu     *cpuMeter
	// t0 is each published event's start time on this machine's clock.
	t0 map[string]time.Time
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.log, format, args...) }

// EventResult is one system's copy of one trader event.
type EventResult struct {
	System  string `json:"system"`
	Step    int    `json:"step"`
	Round   int    `json:"round"`
	Warmup  bool   `json:"warmup"`
	Event   string `json:"event"`
	EventID string `json:"event_id"`
	Copies  int    `json:"copies"`

	// PublishMS is how long the publishing call took (for the synchronous
	// baselines it is the whole copy).
	PublishMS float64 `json:"publish_ms"`
	// LastMS is publish start to the last follower's order committed (the
	// venue call returned), on this machine's clock.
	LastMS float64 `json:"last_ms"`
	// Latency is publish start to each follower's order committed.
	Latency Dist `json:"latency"`
	// CopiesPerSec is copies / LastMS.
	CopiesPerSec float64 `json:"copies_per_sec"`
	// ObservedMS is publish start to the bench's poll seeing every row
	// (resolution: the poll interval).
	ObservedMS float64 `json:"observed_ms"`
	// DBLastMS and DBLatency use the database clock: orders.created_at
	// (the order transaction's start, now()) minus clock_timestamp() read
	// just before publishing. They run a little below the commit-based
	// figures by the transaction's own time.
	DBLastMS  float64 `json:"db_last_ms"`
	DBLatency Dist    `json:"db_latency"`
	// SettleMS is how long after the last order the workers stayed busy
	// (trailing workflow tasks) before the next measurement.
	SettleMS float64 `json:"settle_ms"`

	Problems []string `json:"problems,omitempty"`

	CPU        CPUProfile        `json:"cpu"`
	Activities []ActivityProfile `json:"activities,omitempty"`
	Statements []StmtProfile     `json:"statements,omitempty"`
	PoolWait   Dist              `json:"pool_wait"`
	Temporal   map[string]Dist   `json:"temporal_timers,omitempty"`
	Counters   map[string]int64  `json:"temporal_counters,omitempty"`
	DBWaits    []WaitSample      `json:"db_waits,omitempty"`
}

// table the copies of an event land in.
func table(kind copytrade.EventKind) string {
	if kind == copytrade.EventLeverage {
		return "risk_syncs"
	}
	return "orders"
}

// measure publishes one step on one system and measures it until every
// copy is in PostgreSQL and the workers are idle again. An error means the
// run cannot go on (a copy never arrived, the database failed); a wrong
// copy is a Problem in the result.
func (b *bench) measure(ctx context.Context, sys copier, s step) (EventResult, error) {
	pop := sys.Pop()
	ev := s.event(b.runID, sys.Name(), pop.TraderID)
	res := EventResult{System: sys.Name(), Step: s.Index, Round: s.Round, Warmup: s.Warmup(), Event: s.Name(), EventID: ev.EventID}
	tbl := table(ev.Kind)
	conn := b.st.measure

	var baseID int64
	if err := conn.QueryRow(ctx, `select coalesce(max(id), 0) from `+tbl).Scan(&baseID); err != nil {
		return res, fmt.Errorf("read %s: %w", tbl, err)
	}
	b.st.rec.reset()
	b.st.sink.reset()
	cpuA := b.cpu.snap(ctx)
	var sampler *waitSampler
	if b.opts.profile {
		sampler = startWaitSampler(ctx, b.st.dbURL, b.st.dbName)
	}

	var t0db time.Time
	if err := conn.QueryRow(ctx, `select clock_timestamp()`).Scan(&t0db); err != nil {
		return res, fmt.Errorf("read the database clock: %w", err)
	}
	t0 := time.Now()
	b.t0[ev.EventID] = t0
	recorded, err := sys.Publish(ctx, ev)
	res.PublishMS = ms(time.Since(t0))
	if err != nil {
		return res, fmt.Errorf("%s: publish %s: %w", sys.Name(), ev.EventID, err)
	}
	want, err := pop.expect(recorded, b.inst[ev.InstID], s.Price)
	if err != nil {
		return res, err
	}
	res.Copies = len(want)

	// Wait for every copy: poll the new rows of this event.
	deadline := t0.Add(b.opts.eventTimeout)
	var got int
	for {
		if err := conn.QueryRow(ctx, `select count(*) from `+tbl+` where id > $1 and trader_event_id = $2`, baseID, ev.EventID).Scan(&got); err != nil {
			return res, fmt.Errorf("poll %s: %w", tbl, err)
		}
		if got >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(b.opts.pollInterval)
	}
	res.ObservedMS = ms(time.Since(t0))
	if sampler != nil {
		res.DBWaits = sampler.stop()
	}
	if got < len(want) {
		why := b.whyMissing(ctx, sys, tbl, baseID, ev.EventID, want)
		return res, fmt.Errorf("%s: only %d of %d copies of %s arrived within %s%s", sys.Name(), got, len(want), ev.EventID, b.opts.eventTimeout, why)
	}
	if sys.Async() {
		settled := time.Now()
		b.waitIdle(ctx)
		res.SettleMS = ms(time.Since(settled))
	}
	cpuB := b.cpu.snap(ctx)
	res.CPU = b.cpu.between(cpuA, cpuB)

	// Latencies from the venue calls' return times (commit).
	var lat []float64
	for _, f := range b.st.rec.fillsOf(ev.EventID) {
		if _, ok := pop.byRel[f.RelationshipID]; ok {
			lat = append(lat, ms(f.At.Sub(t0)))
		}
	}
	res.Latency = distOf(lat)
	res.LastMS = res.Latency.Max
	if res.LastMS > 0 {
		res.CopiesPerSec = round3(float64(len(want)) / (res.LastMS / 1000))
	}
	if len(lat) != len(want) {
		res.Problems = append(res.Problems, fmt.Sprintf("%d venue calls returned a new row for %d expected copies", len(lat), len(want)))
	}

	problems, dbLat, err := b.check(ctx, tbl, baseID, ev, want, t0db)
	if err != nil {
		return res, err
	}
	res.Problems = append(res.Problems, problems...)
	res.DBLatency = distOf(dbLat)
	res.DBLastMS = res.DBLatency.Max

	res.Activities, res.Statements, res.PoolWait = b.st.rec.snapshot()
	res.Temporal, res.Counters = b.st.sink.snapshot()
	if !b.opts.profile && len(res.Statements) > 12 {
		res.Statements = res.Statements[:12]
	}
	return res, nil
}

// whyMissing describes a few relationships whose copy did not arrive: their
// workflow's pending activities and last failure, if they have a workflow.
func (b *bench) whyMissing(ctx context.Context, sys copier, tbl string, baseID int64, eventID string, want map[string]expectation) string {
	rows, err := b.st.measure.Query(ctx, `select relationship_id from `+tbl+` where id > $1 and trader_event_id = $2`, baseID, eventID)
	if err != nil {
		return ""
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return ""
	}
	got := map[string]bool{}
	for _, rel := range have {
		got[rel] = true
	}
	var out []string
	for rel := range want {
		if got[rel] || len(out) == 3 {
			continue
		}
		f := sys.Pop().byRel[rel]
		id := sys.WorkflowID(f)
		if id == "" {
			out = append(out, rel+": no row")
			continue
		}
		desc, err := b.st.pubClient.DescribeWorkflow(ctx, id, "")
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		info := desc.RawResponse.GetWorkflowExecutionInfo()
		line := fmt.Sprintf("%s: %s, history %d", id, info.GetStatus(), info.GetHistoryLength())
		for _, pa := range desc.RawResponse.GetPendingActivities() {
			line += fmt.Sprintf("; pending %s %s attempt %d last failure %q", pa.GetActivityType().GetName(), pa.GetState(),
				pa.GetAttempt(), pa.GetLastFailure().GetMessage())
		}
		if pw := desc.RawResponse.GetPendingWorkflowTask(); pw != nil {
			line += fmt.Sprintf("; workflow task %s attempt %d", pw.GetState(), pw.GetAttempt())
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return ""
	}
	return " (" + strings.Join(out, " | ") + ")"
}

// check compares the rows of one event with the expectations: exactly one
// row per expected relationship, none for anyone else, sizes (and margins
// of opens) as the sizing rules give, status as expected.
func (b *bench) check(ctx context.Context, tbl string, baseID int64, ev copytrade.TraderEvent, want map[string]expectation, t0db time.Time) ([]string, []float64, error) {
	var sql string
	if tbl == "orders" {
		sql = `select relationship_id, size, margin, status, created_at from orders where id > $1 and trader_event_id = $2`
	} else {
		sql = `select relationship_id, 0::numeric, 0::numeric, status, created_at from risk_syncs where id > $1 and trader_event_id = $2`
	}
	rows, err := b.st.measure.Query(ctx, sql, baseID, ev.EventID)
	if err != nil {
		return nil, nil, fmt.Errorf("read copies of %s: %w", ev.EventID, err)
	}
	type row struct {
		rel          string
		size, margin decimal.Decimal
		status       string
		created      time.Time
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.rel, &x.size, &x.margin, &x.status, &x.created)
		return x, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read copies of %s: %w", ev.EventID, err)
	}
	var problems []string
	note := func(format string, args ...any) {
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		} else if len(problems) == 10 {
			problems = append(problems, "(more problems not listed)")
		}
	}
	seen := map[string]int{}
	var dbLat []float64
	for _, r := range got {
		seen[r.rel]++
		dbLat = append(dbLat, ms(r.created.Sub(t0db)))
		w, ok := want[r.rel]
		switch {
		case !ok:
			note("unexpected %s row for relationship %s", tbl, r.rel)
		case r.status != w.Status:
			note("relationship %s: status %s, want %s", r.rel, r.status, w.Status)
		case tbl == "orders" && !r.size.Equal(w.Size):
			note("relationship %s: size %s, want %s", r.rel, r.size, w.Size)
		case tbl == "orders" && !w.Margin.IsZero() && !r.margin.Equal(w.Margin):
			note("relationship %s: margin %s, want %s", r.rel, r.margin, w.Margin)
		}
	}
	var missing, doubled int
	for rel := range want {
		switch n := seen[rel]; {
		case n == 0:
			missing++
		case n > 1:
			doubled++
		}
	}
	if missing > 0 {
		note("%d relationships have no %s row for %s (lost copies)", missing, tbl, ev.EventID)
	}
	if doubled > 0 {
		note("%d relationships have more than one %s row for %s (doubled copies)", doubled, tbl, ev.EventID)
	}
	return problems, dbLat, nil
}

// waitIdle waits until no workflow task or activity has finished for a
// while: the trailing work of the last measurement (recording the order's
// outcome in each relationship's history) must not be charged to the next
// one.
func (b *bench) waitIdle(ctx context.Context) {
	const quiet = 300 * time.Millisecond
	deadline := time.Now().Add(b.opts.eventTimeout)
	last := b.st.sink.work.Load()
	since := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(25 * time.Millisecond)
		if n := b.st.sink.work.Load(); n != last {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}

// finalCheck compares every relationship's positions with the model,
// counts orders and syncs per relationship over the whole run, and runs
// the ledger audit.
func (b *bench) finalCheck(ctx context.Context) ([]string, error) {
	var problems []string
	conn := b.st.measure
	for _, sys := range b.systems {
		pop := sys.Pop()
		rows, err := conn.Query(ctx, `select relationship_id, inst_id, side, size, leverage from positions
			where relationship_id = any($1)`, relIDs(pop))
		if err != nil {
			return nil, fmt.Errorf("read positions: %w", err)
		}
		held := map[string]map[copytrade.PositionKey][2]decimal.Decimal{}
		for rows.Next() {
			var rel, inst, side string
			var size, lev decimal.Decimal
			if err := rows.Scan(&rel, &inst, &side, &size, &lev); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read positions: %w", err)
			}
			if held[rel] == nil {
				held[rel] = map[copytrade.PositionKey][2]decimal.Decimal{}
			}
			held[rel][copytrade.PositionKey{InstID: inst, Side: copytrade.Side(side)}] = [2]decimal.Decimal{size, lev}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read positions: %w", err)
		}
		bad := 0
		for _, f := range pop.Followers {
			for key, p := range f.pos {
				h := held[f.RelationshipID][key]
				if !h[0].Equal(p.Size) || (p.Size.IsPositive() && !h[1].Equal(p.Leverage)) {
					if bad < 5 {
						problems = append(problems, fmt.Sprintf("%s %s %s: holds %s at %sx, want %s at %sx",
							sys.Name(), f.ID, key, h[0], h[1], p.Size, p.Leverage))
					}
					bad++
				}
			}
		}
		if bad > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d positions differ from the sizing rules' model", sys.Name(), bad))
		}
		var dup int
		if err := conn.QueryRow(ctx, `select count(*) from (
				select relationship_id, trader_event_id from orders where relationship_id = any($1) group by 1, 2 having count(*) > 1
				union all
				select relationship_id, trader_event_id from risk_syncs where relationship_id = any($1) group by 1, 2 having count(*) > 1) d`,
			relIDs(pop)).Scan(&dup); err != nil {
			return nil, fmt.Errorf("count doubles: %w", err)
		}
		if dup > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d (relationship, event) pairs have more than one row", sys.Name(), dup))
		}
	}
	audit, err := b.st.acts.Store.Audit(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range audit.Differences {
		problems = append(problems, "audit: "+d)
	}
	return problems, nil
}

func relIDs(p *population) []string {
	ids := make([]string, 0, len(p.Followers))
	for _, f := range p.Followers {
		ids = append(ids, f.RelationshipID)
	}
	sort.Strings(ids)
	return ids
}

// WaitSample is the share of pg_stat_activity samples of the bench
// database's busy sessions in one state and wait event.
type WaitSample struct {
	State string  `json:"state"`
	Wait  string  `json:"wait"`
	Share float64 `json:"share"`
	// Sessions is the mean number of sessions in it per sample.
	Sessions float64 `json:"sessions"`
}

// waitSampler samples pg_stat_activity every 10 ms (-profile only): what
// the database's sessions are doing while the copies run. "idle in
// transaction / Client:ClientRead" is a transaction waiting for its client
// (round trips, client CPU); "active / CPU" runs; Lock waits are row locks
// (the venue's fee account, the fund rows); IO and LWLock:WAL* are commits.
type waitSampler struct {
	stopCh chan struct{}
	done   chan []WaitSample
}

func startWaitSampler(ctx context.Context, dbURL, dbName string) *waitSampler {
	w := &waitSampler{stopCh: make(chan struct{}), done: make(chan []WaitSample, 1)}
	go func() {
		counts := map[[2]string]int{}
		samples := 0
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			<-w.stopCh
			w.done <- nil
			return
		}
		defer conn.Close(context.Background())
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stopCh:
				w.done <- summarizeWaits(counts, samples)
				return
			case <-tick.C:
			}
			rows, err := conn.Query(ctx, `select state, coalesce(wait_event_type || ':' || wait_event, 'CPU')
				from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and state is not null and state <> 'idle'`, dbName)
			if err != nil {
				continue
			}
			samples++
			for rows.Next() {
				var state, wait string
				if rows.Scan(&state, &wait) == nil {
					counts[[2]string{state, wait}]++
				}
			}
			rows.Close()
		}
	}()
	return w
}

func (w *waitSampler) stop() []WaitSample {
	close(w.stopCh)
	return <-w.done
}

func summarizeWaits(counts map[[2]string]int, samples int) []WaitSample {
	total := 0
	for _, n := range counts {
		total += n
	}
	var out []WaitSample
	for k, n := range counts {
		out = append(out, WaitSample{State: k[0], Wait: k[1], Share: round3(float64(n) / float64(max(total, 1))),
			Sessions: round3(float64(n) / float64(max(samples, 1)))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Share > out[j].Share })
	return out
}
