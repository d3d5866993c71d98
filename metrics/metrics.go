// Package metrics is what a worker process tells Prometheus: smartcopy's own
// counters (copies placed and failed, trader-event-to-fill latency, stop
// losses, funds released) and the Temporal SDK's metrics, all on one
// registry served at /metrics.
//
// smartcopy's metrics are plain client_golang collectors. The SDK's go
// through its OpenTelemetry contrib handler into an OpenTelemetry meter whose
// reader is the Prometheus exporter registered on the same registry, so one
// scrape returns both. The registry belongs to the Metrics value, not to the
// process: two workers in one test process count separately.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"

	"smartcopy/copytrade"
)

// Names of smartcopy's own metrics, as Prometheus shows them.
const (
	CopiesPlaced      = "smartcopy_copies_placed_total"
	CopiesFailed      = "smartcopy_copies_failed_total"
	EventToFill       = "smartcopy_event_to_fill_seconds"
	StopLosses        = "smartcopy_stop_losses_triggered_total"
	FundsReleased     = "smartcopy_funds_released_total"
	FundsReleasedUSDT = "smartcopy_funds_released_usdt_total"
)

// latencyBuckets (seconds) cover a copy that fills within milliseconds of
// the trader's event up to one held back by a gap or an outage for minutes.
// Both the event-to-fill histogram and the SDK's timers use them; the
// OpenTelemetry default buckets (0 to 10,000) are meant for milliseconds.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// Metrics implements activities.Metrics and holds the registry /metrics
// serves.
type Metrics struct {
	registry     *prometheus.Registry
	placed       *prometheus.CounterVec
	failed       *prometheus.CounterVec
	eventToFill  *prometheus.HistogramVec
	stopLosses   prometheus.Counter
	releases     prometheus.Counter
	releasedUSDT prometheus.Counter
	temporal     client.MetricsHandler
}

// New builds the registry with smartcopy's metrics, the Go runtime and
// process collectors, and the SDK's metrics handler. SDK metric errors are
// logged to logger rather than panicking, the contrib package's default.
func New(logger *slog.Logger) (*Metrics, error) {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		placed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CopiesPlaced,
			Help: "Copy orders filled, by the trader event kind copied (open, close).",
		}, []string{"kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CopiesFailed,
			Help: "Copy orders not placed, by reason (insufficient_funds, spread_protection, unknown_instrument, ...).",
		}, []string{"reason"}),
		eventToFill: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    EventToFill,
			Help:    "Time from the trader event (its at field, else when it was published) to the copy's fill.",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
		stopLosses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: StopLosses,
			Help: "Relationships stopped by their stop loss.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: FundsReleased,
			Help: "Copy funds released to the follower at the end of a relationship.",
		}),
		releasedUSDT: prometheus.NewCounter(prometheus.CounterOpts{
			Name: FundsReleasedUSDT,
			Help: "USDT released from copy funds to followers' available balances.",
		}),
	}
	for _, c := range []prometheus.Collector{
		m.placed, m.failed, m.eventToFill, m.stopLosses, m.releases, m.releasedUSDT,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	exporter, err := otelprom.New(otelprom.WithRegisterer(m.registry))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter for the Temporal SDK's metrics: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exporter),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: latencyBuckets}},
		)),
	)
	m.temporal = temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("temporal-sdk-go"),
		// The SDK's counters only go up; monotonic counters make them
		// Prometheus counters (temporal_request_total) rather than gauges.
		UseMonotonicCounters: true,
		OnError: func(err error) {
			logger.Error("Temporal SDK metric", "error", err)
		},
	})
	return m, nil
}

// Temporal is the handler for client.Options.MetricsHandler.
func (m *Metrics) Temporal() client.MetricsHandler { return m.temporal }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// CopyPlaced counts a filled copy order.
func (m *Metrics) CopyPlaced(kind copytrade.EventKind) {
	m.placed.WithLabelValues(string(kind)).Inc()
}

// CopyFailed counts a copy order recorded as failed.
func (m *Metrics) CopyFailed(reason string) {
	m.failed.WithLabelValues(reason).Inc()
}

// EventToFill observes the time from a trader event to its copy's fill.
func (m *Metrics) EventToFill(kind copytrade.EventKind, latency time.Duration) {
	m.eventToFill.WithLabelValues(string(kind)).Observe(latency.Seconds())
}

// StopLossTriggered counts a relationship stopped by its stop loss.
func (m *Metrics) StopLossTriggered() {
	m.stopLosses.Inc()
}

// FundsReleased counts a release and its amount. A counter cannot go down,
// so a fund released empty or below zero adds nothing to the amount.
func (m *Metrics) FundsReleased(amount float64) {
	m.releases.Inc()
	if amount > 0 {
		m.releasedUSDT.Add(amount)
	}
}
