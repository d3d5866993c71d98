package main

import (
	"context"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"

	"smartcopy/copytrade"
	"smartcopy/venue"
)

// This file holds the bench's instruments. None of them is in production
// code: the venue is wrapped, the pool gets a query tracer, the Temporal
// clients get a metrics handler and the worker an activity interceptor, all
// through the public extension points of the libraries.

// recorder collects what the instruments see. Fills are kept for the whole
// run; everything else is per measurement window (reset at each event).
type recorder struct {
	mu sync.Mutex
	// fills: when each copy's venue call returned (the order committed),
	// by trader event id.
	fills map[string][]fillAt

	stmts      map[string]*stmtStat
	acquire    []float64
	activities map[string]*activityStat
}

type fillAt struct {
	RelationshipID string
	At             time.Time
}

type stmtStat struct {
	Count int
	Total time.Duration
	Max   time.Duration
}

type activityStat struct {
	total           []float64
	scheduleToStart []float64
	phases          map[string][]float64
}

func newRecorder() *recorder {
	r := &recorder{fills: make(map[string][]fillAt)}
	r.reset()
	return r
}

// reset starts a new measurement window.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = make(map[string]*stmtStat)
	r.acquire = nil
	r.activities = make(map[string]*activityStat)
}

func (r *recorder) fill(eventID, relID string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fills[eventID] = append(r.fills[eventID], fillAt{RelationshipID: relID, At: at})
}

func (r *recorder) fillsOf(eventID string) []fillAt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fillAt(nil), r.fills[eventID]...)
}

// Context labels: the phase a query runs in (set by the venue wrapper and
// the publisher) and the activity it runs for (set by the interceptor).
type phaseKey struct{}
type traceKey struct{}
type queryStartKey struct{}
type acquireStartKey struct{}

func withPhase(ctx context.Context, phase string) context.Context {
	return context.WithValue(ctx, phaseKey{}, phase)
}

func phaseOf(ctx context.Context) string {
	p, _ := ctx.Value(phaseKey{}).(string)
	return p
}

// actTrace is one activity execution's time by phase. An activity runs on
// one goroutine, and so do its queries, so it needs no lock.
type actTrace struct {
	kind            string
	scheduleToStart time.Duration
	phases          map[string]time.Duration
}

func newTrace(kind string) *actTrace {
	return &actTrace{kind: kind, phases: make(map[string]time.Duration)}
}

func withTrace(ctx context.Context, t *actTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceOf(ctx context.Context) *actTrace {
	t, _ := ctx.Value(traceKey{}).(*actTrace)
	return t
}

func (r *recorder) activityDone(t *actTrace, total time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.activities[t.kind]
	if s == nil {
		s = &activityStat{phases: make(map[string][]float64)}
		r.activities[t.kind] = s
	}
	s.total = append(s.total, ms(total))
	if t.scheduleToStart > 0 {
		s.scheduleToStart = append(s.scheduleToStart, ms(t.scheduleToStart))
	}
	var accounted time.Duration
	for name, d := range t.phases {
		s.phases[name] = append(s.phases[name], ms(d))
		if name != "pool wait" {
			accounted += d
		}
	}
	s.phases["other (Go, encoding)"] = append(s.phases["other (Go, encoding)"], ms(total-accounted))
}

// ActivityProfile is one activity type's time in a window.
type ActivityProfile struct {
	Type            string          `json:"type"`
	Total           Dist            `json:"total"`
	ScheduleToStart Dist            `json:"schedule_to_start"`
	Phases          map[string]Dist `json:"phases"`
}

// StmtProfile is one statement's time in a window, as the client saw it
// (network round trip and lock waits included).
type StmtProfile struct {
	Phase   string  `json:"phase"`
	SQL     string  `json:"sql"`
	Count   int     `json:"count"`
	TotalMS float64 `json:"total_ms"`
	MeanMS  float64 `json:"mean_ms"`
	MaxMS   float64 `json:"max_ms"`
}

func (r *recorder) snapshot() ([]ActivityProfile, []StmtProfile, Dist) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var acts []ActivityProfile
	for kind, s := range r.activities {
		p := ActivityProfile{Type: kind, Total: distOf(s.total), ScheduleToStart: distOf(s.scheduleToStart), Phases: map[string]Dist{}}
		for name, v := range s.phases {
			p.Phases[name] = distOf(v)
		}
		acts = append(acts, p)
	}
	sort.Slice(acts, func(i, j int) bool { return acts[i].Total.Sum > acts[j].Total.Sum })
	var stmts []StmtProfile
	for key, s := range r.stmts {
		phase, sql, _ := strings.Cut(key, "|")
		stmts = append(stmts, StmtProfile{Phase: phase, SQL: sql, Count: s.Count, TotalMS: ms(s.Total),
			MeanMS: round3(ms(s.Total) / float64(s.Count)), MaxMS: ms(s.Max)})
	}
	sort.Slice(stmts, func(i, j int) bool { return stmts[i].TotalMS > stmts[j].TotalMS })
	return acts, stmts, distOf(r.acquire)
}

// pgTracer times every statement and every pool acquire. It is the bench's
// client-side stand-in for pg_stat_statements, which needs a server
// restart to load.
type pgTracer struct{ rec *recorder }

var (
	_ pgx.QueryTracer       = (*pgTracer)(nil)
	_ pgxpool.AcquireTracer = (*pgTracer)(nil)
)

func (t *pgTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{sql: data.SQL, at: time.Now()})
}

type queryStart struct {
	sql string
	at  time.Time
}

func (t *pgTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	s, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok {
		return
	}
	d := time.Since(s.at)
	phase := phaseOf(ctx)
	if tr := traceOf(ctx); tr != nil && phase == "" {
		// Inside an activity and outside any venue call: the store
		// (store.Figures after every order).
		phase = "store"
		tr.phases["store"] += d
	}
	if phase == "" {
		phase = "other"
	}
	key := phase + "|" + normalizeSQL(s.sql)
	t.rec.mu.Lock()
	defer t.rec.mu.Unlock()
	st := t.rec.stmts[key]
	if st == nil {
		st = &stmtStat{}
		t.rec.stmts[key] = st
	}
	st.Count++
	st.Total += d
	st.Max = max(st.Max, d)
}

func (t *pgTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return context.WithValue(ctx, acquireStartKey{}, time.Now())
}

func (t *pgTracer) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	at, ok := ctx.Value(acquireStartKey{}).(time.Time)
	if !ok {
		return
	}
	d := time.Since(at)
	if tr := traceOf(ctx); tr != nil {
		tr.phases["pool wait"] += d
	}
	t.rec.mu.Lock()
	t.rec.acquire = append(t.rec.acquire, ms(d))
	t.rec.mu.Unlock()
}

func normalizeSQL(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 90 {
		s = s[:90] + "…"
	}
	return s
}

// timedVenue wraps the paper venue: it labels the venue's queries with the
// call they belong to, adds the call's time to the running activity's
// trace, and records when each order (or leverage sync) returned, which
// is when its transaction had committed.
type timedVenue struct {
	venue.Venue
	rec *recorder
}

func (v *timedVenue) timed(ctx context.Context, phase string) (context.Context, func()) {
	start := time.Now()
	tr := traceOf(ctx)
	return withPhase(ctx, phase), func() {
		if tr != nil {
			tr.phases[phase] += time.Since(start)
		}
	}
}

func (v *timedVenue) Instrument(ctx context.Context, instID string) (copytrade.Instrument, error) {
	ctx, done := v.timed(ctx, "venue.Instrument")
	defer done()
	return v.Venue.Instrument(ctx, instID)
}

func (v *timedVenue) MarkPrice(ctx context.Context, instID string) (decimal.Decimal, error) {
	ctx, done := v.timed(ctx, "venue.MarkPrice")
	defer done()
	return v.Venue.MarkPrice(ctx, instID)
}

func (v *timedVenue) Positions(ctx context.Context, relID string) ([]copytrade.Position, error) {
	ctx, done := v.timed(ctx, "venue.Positions")
	defer done()
	return v.Venue.Positions(ctx, relID)
}

func (v *timedVenue) PlaceOrder(ctx context.Context, req venue.OrderRequest) (venue.Fill, error) {
	ctx, done := v.timed(ctx, "venue.PlaceOrder")
	fill, err := v.Venue.PlaceOrder(ctx, req)
	done()
	if err == nil && !fill.Replayed {
		v.rec.fill(req.TraderEventID, req.RelationshipID, time.Now())
	}
	return fill, err
}

func (v *timedVenue) SetLeverage(ctx context.Context, req venue.LeverageRequest) (venue.SyncResult, error) {
	ctx, done := v.timed(ctx, "venue.SetLeverage")
	res, err := v.Venue.SetLeverage(ctx, req)
	done()
	if err == nil {
		v.rec.fill(req.TraderEventID, req.RelationshipID, time.Now())
	}
	return res, err
}

// activityTimer is a worker interceptor that traces every activity
// execution; it rides on the worker's client (client.Options.Interceptors
// reach the workers built from that client).
type activityTimer struct {
	interceptor.InterceptorBase
	rec *recorder
}

func (a *activityTimer) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &activityInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, rec: a.rec}
}

type activityInbound struct {
	interceptor.ActivityInboundInterceptorBase
	rec *recorder
}

func (a *activityInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	info := activity.GetInfo(ctx)
	tr := newTrace(info.ActivityType.Name)
	tr.scheduleToStart = info.StartedTime.Sub(info.ScheduledTime)
	start := time.Now()
	res, err := a.Next.ExecuteActivity(withTrace(ctx, tr), in)
	a.rec.activityDone(tr, time.Since(start))
	return res, err
}

// metricsSink is an in-memory client.MetricsHandler: it keeps every timer
// sample of a window, keyed by metric name and the tags that tell the
// systems and operations apart.
type metricsSink struct {
	mu       sync.Mutex
	timers   map[string][]float64
	counters map[string]int64
	// work counts finished workflow tasks and activities, for the idle
	// check between measurements; never reset.
	work atomic.Int64
}

func newMetricsSink() *metricsSink {
	s := &metricsSink{}
	s.reset()
	return s
}

func (s *metricsSink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timers = make(map[string][]float64)
	s.counters = make(map[string]int64)
}

func (s *metricsSink) handler() client.MetricsHandler { return metricsHandler{sink: s} }

// count is how many samples timer key has in this window.
func (s *metricsSink) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.timers[key])
}

// snapshot returns the window's timers and counters.
func (s *metricsSink) snapshot() (map[string]Dist, map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	timers := make(map[string]Dist, len(s.timers))
	for k, v := range s.timers {
		timers[k] = distOf(v)
	}
	counters := make(map[string]int64, len(s.counters))
	for k, v := range s.counters {
		counters[k] = v
	}
	return timers, counters
}

type metricsHandler struct {
	sink *metricsSink
	tags map[string]string
}

var keyTags = []string{"workflow_type", "activity_type", "operation", "poller_type"}

func (h metricsHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return metricsHandler{sink: h.sink, tags: merged}
}

func (h metricsHandler) key(name string) string {
	var b strings.Builder
	b.WriteString(strings.TrimPrefix(name, "temporal_"))
	for _, t := range keyTags {
		if v := h.tags[t]; v != "" && v != "none" {
			b.WriteString(" " + t + "=" + v)
		}
	}
	return b.String()
}

func (h metricsHandler) Counter(name string) client.MetricsCounter {
	key := h.key(name)
	return counterFunc(func(n int64) {
		h.sink.mu.Lock()
		h.sink.counters[key] += n
		h.sink.mu.Unlock()
	})
}

func (h metricsHandler) Gauge(string) client.MetricsGauge { return gaugeFunc(func(float64) {}) }

func (h metricsHandler) Timer(name string) client.MetricsTimer {
	key := h.key(name)
	isWork := name == "temporal_workflow_task_execution_latency" || name == "temporal_activity_execution_latency"
	return timerFunc(func(d time.Duration) {
		if isWork {
			h.sink.work.Add(1)
		}
		h.sink.mu.Lock()
		h.sink.timers[key] = append(h.sink.timers[key], ms(d))
		h.sink.mu.Unlock()
	})
}

type counterFunc func(int64)

func (f counterFunc) Inc(n int64) { f(n) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }
