// Package system is the one place that reads configuration and builds
// clients, pools and workers; the worker, the starter CLI, the tests and the
// benchmark all get them from here, so main functions stay short.
package system

import (
	"fmt"
	"net"
	"net/mail"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/workflows"
)

// Config is everything smartcopy reads from the environment. Names follow
// what Temporal users already know (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// TEMPORAL_API_KEY, TEMPORAL_TLS_CERT/KEY) and DATABASE_URL.
type Config struct {
	TemporalAddress   string
	TemporalNamespace string
	// TemporalAPIKey switches on TLS and API-key auth (Temporal Cloud).
	TemporalAPIKey string
	// TemporalTLSCert and TemporalTLSKey are paths of a client certificate
	// for mTLS (self-hosted with TLS, or Temporal Cloud with mTLS).
	TemporalTLSCert string
	TemporalTLSKey  string
	// TemporalTLS forces TLS without a client certificate.
	TemporalTLS bool
	// TemporalGRPCCompression is gzip (the SDK's default) or none. Next to
	// the server, gzip costs a tenth of a worker's CPU for nothing; across
	// a network to a cluster or Temporal Cloud it saves bandwidth.
	TemporalGRPCCompression string

	DatabaseURL string
	// DatabaseMaxConns sizes the worker's PostgreSQL pool; it should be
	// about the activity concurrency, since each activity holds one
	// connection for its transaction.
	DatabaseMaxConns int

	TaskQueue string
	// MaxConcurrentActivities and MaxConcurrentWorkflowTasks bound what one
	// worker process runs at once.
	MaxConcurrentActivities    int
	MaxConcurrentWorkflowTasks int
	// WorkflowTaskPollers is the long polls one worker keeps open on the
	// task queue and as many on its sticky queue (NewWorker says why they
	// are separate); ActivityTaskPollers those on the task queue for
	// regular activities. More pollers take tasks off a busy queue faster.
	WorkflowTaskPollers int
	ActivityTaskPollers int
	// StickyScheduleToStart is how long a workflow task waits for this
	// worker on its sticky queue before the server moves it to the task
	// queue, where it costs a full history replay (NewWorker says why it
	// is longer than the SDK's 5 s).
	StickyScheduleToStart time.Duration

	// SMTPAddr (host:port) enables email notifications; empty keeps them
	// in-app only.
	SMTPAddr     string
	SMTPFrom     string
	SMTPUsername string
	SMTPPassword string

	// MetricsAddr serves Prometheus metrics at /metrics; empty disables.
	MetricsAddr string

	// RiskSweepInterval is how often the risk sweep tests every stop loss
	// at the latest mark prices, besides every price change it is told of.
	RiskSweepInterval time.Duration

	Workflow workflows.Config
}

// Defaults are what an unset variable means.
func Defaults() Config {
	return Config{
		TemporalAddress:            "localhost:7233",
		TemporalNamespace:          "default",
		TemporalGRPCCompression:    "gzip",
		DatabaseURL:                "postgres://postgres@127.0.0.1:5432/smartcopy?sslmode=disable",
		DatabaseMaxConns:           32,
		TaskQueue:                  workflows.TaskQueue,
		MaxConcurrentActivities:    200,
		MaxConcurrentWorkflowTasks: 200,
		WorkflowTaskPollers:        8,
		ActivityTaskPollers:        2,
		StickyScheduleToStart:      20 * time.Second,
		SMTPFrom:                   "smartcopy@localhost",
		RiskSweepInterval:          2 * time.Second,
		Workflow:                   workflows.DefaultConfig(),
	}
}

// Variables lists every environment variable smartcopy reads, with what it
// means; the README's configuration table is this list.
var Variables = []struct{ Name, Meaning string }{
	{"TEMPORAL_ADDRESS", "Temporal frontend host:port (default localhost:7233)"},
	{"TEMPORAL_NAMESPACE", "Temporal namespace (default default)"},
	{"TEMPORAL_API_KEY", "API key for Temporal Cloud; turns TLS on"},
	{"TEMPORAL_TLS_CERT", "client certificate file for mTLS"},
	{"TEMPORAL_TLS_KEY", "client key file for mTLS"},
	{"TEMPORAL_TLS", "true to use TLS without a client certificate"},
	{"TEMPORAL_GRPC_COMPRESSION", "gzip (default) or none: compression of requests to Temporal; none saves CPU next to the server"},
	{"DATABASE_URL", "PostgreSQL URL (default postgres://postgres@127.0.0.1:5432/smartcopy)"},
	{"DATABASE_MAX_CONNS", "PostgreSQL pool size per process (default 32)"},
	{"SMARTCOPY_TASK_QUEUE", "task queue (default smartcopy)"},
	{"SMARTCOPY_MAX_CONCURRENT_ACTIVITIES", "activities one worker runs at once (default 200)"},
	{"SMARTCOPY_MAX_CONCURRENT_WORKFLOW_TASKS", "workflow tasks one worker runs at once (default 200)"},
	{"SMARTCOPY_WORKFLOW_TASK_POLLERS", "workflow task long polls one worker keeps open on the task queue, and as many on its sticky queue (default 8)"},
	{"SMARTCOPY_ACTIVITY_TASK_POLLERS", "activity task long polls one worker keeps open (default 2)"},
	{"SMARTCOPY_STICKY_SCHEDULE_TO_START", "how long a workflow task waits for its worker's cache before any worker takes it (default 20s)"},
	{"SMTP_ADDR", "SMTP server host:port for email notifications (unset: in-app only)"},
	{"SMTP_FROM", "sender address (default smartcopy@localhost)"},
	{"SMTP_USERNAME", "SMTP user (PLAIN auth when set)"},
	{"SMTP_PASSWORD", "SMTP password"},
	{"METRICS_ADDR", "address to serve Prometheus /metrics on, e.g. :9090 (unset: off)"},
	{"SMARTCOPY_RISK_SWEEP_INTERVAL", "how often stop losses are swept at mark (default 2s)"},
	{"SMARTCOPY_MIN_INVESTMENT", "minimum investment in USDT (default 100)"},
	{"SMARTCOPY_MAX_FOLLOWERS_PER_TRADER", "follower limit of a trader (default 1000)"},
	{"SMARTCOPY_MAX_TRADERS_PER_FOLLOWER", "trader limit of a follower (default 20)"},
	{"SMARTCOPY_SPREAD_TOLERANCE", "spread protection as a fraction (default 0.005)"},
	{"SMARTCOPY_GAP_HOLD_BACK", "how long an out-of-order trader event waits for a missing one (default 30s)"},
	{"SMARTCOPY_HISTORY_LIMIT", "continue-as-new after this many history events (default 0: when the server suggests)"},
}

// LoadConfig reads the environment through getenv (os.Getenv in
// production). A value that does not parse fails with the variable's name.
func LoadConfig(getenv func(string) string) (Config, error) {
	cfg := Defaults()
	r := reader{getenv: getenv}
	r.hostPort("TEMPORAL_ADDRESS", &cfg.TemporalAddress, false)
	r.str("TEMPORAL_NAMESPACE", &cfg.TemporalNamespace)
	r.str("TEMPORAL_API_KEY", &cfg.TemporalAPIKey)
	r.str("TEMPORAL_TLS_CERT", &cfg.TemporalTLSCert)
	r.str("TEMPORAL_TLS_KEY", &cfg.TemporalTLSKey)
	r.boolean("TEMPORAL_TLS", &cfg.TemporalTLS)
	r.oneOf("TEMPORAL_GRPC_COMPRESSION", &cfg.TemporalGRPCCompression, "gzip", "none")
	r.databaseURL("DATABASE_URL", &cfg.DatabaseURL)
	r.positiveInt("DATABASE_MAX_CONNS", &cfg.DatabaseMaxConns)
	r.str("SMARTCOPY_TASK_QUEUE", &cfg.TaskQueue)
	r.positiveInt("SMARTCOPY_MAX_CONCURRENT_ACTIVITIES", &cfg.MaxConcurrentActivities)
	r.positiveInt("SMARTCOPY_MAX_CONCURRENT_WORKFLOW_TASKS", &cfg.MaxConcurrentWorkflowTasks)
	r.positiveInt("SMARTCOPY_WORKFLOW_TASK_POLLERS", &cfg.WorkflowTaskPollers)
	r.positiveInt("SMARTCOPY_ACTIVITY_TASK_POLLERS", &cfg.ActivityTaskPollers)
	r.duration("SMARTCOPY_STICKY_SCHEDULE_TO_START", &cfg.StickyScheduleToStart)
	r.hostPort("SMTP_ADDR", &cfg.SMTPAddr, false)
	r.email("SMTP_FROM", &cfg.SMTPFrom)
	r.str("SMTP_USERNAME", &cfg.SMTPUsername)
	r.str("SMTP_PASSWORD", &cfg.SMTPPassword)
	// An empty host (":9090") listens on every interface.
	r.hostPort("METRICS_ADDR", &cfg.MetricsAddr, true)
	r.duration("SMARTCOPY_RISK_SWEEP_INTERVAL", &cfg.RiskSweepInterval)
	rules := &cfg.Workflow.Rules
	r.positiveDecimal("SMARTCOPY_MIN_INVESTMENT", &rules.MinInvestment)
	r.positiveInt("SMARTCOPY_MAX_FOLLOWERS_PER_TRADER", &rules.MaxFollowersPerTrader)
	r.positiveInt("SMARTCOPY_MAX_TRADERS_PER_FOLLOWER", &rules.MaxTradersPerFollower)
	r.positiveDecimal("SMARTCOPY_SPREAD_TOLERANCE", &rules.SpreadTolerance)
	r.duration("SMARTCOPY_GAP_HOLD_BACK", &cfg.Workflow.GapHoldBack)
	r.nonNegativeInt("SMARTCOPY_HISTORY_LIMIT", &cfg.Workflow.HistoryLimit)
	if r.err != nil {
		return Config{}, r.err
	}
	// The certificate and its key are one setting: the error names the
	// one that is missing.
	if cfg.TemporalTLSCert != "" && cfg.TemporalTLSKey == "" {
		return Config{}, fmt.Errorf("TEMPORAL_TLS_KEY: is required when TEMPORAL_TLS_CERT is set (the client certificate's key file)")
	}
	if cfg.TemporalTLSKey != "" && cfg.TemporalTLSCert == "" {
		return Config{}, fmt.Errorf("TEMPORAL_TLS_CERT: is required when TEMPORAL_TLS_KEY is set (the client certificate file)")
	}
	if rules.SpreadTolerance.GreaterThanOrEqual(decimal.NewFromInt(1)) {
		return Config{}, fmt.Errorf("SMARTCOPY_SPREAD_TOLERANCE: must be below 1 (it is a fraction: 0.005 is 0.5%%), got %s", rules.SpreadTolerance)
	}
	return cfg, nil
}

// LoadConfigFromEnv is LoadConfig(os.Getenv).
func LoadConfigFromEnv() (Config, error) { return LoadConfig(os.Getenv) }

// reader parses variables, keeping the first error.
type reader struct {
	getenv func(string) string
	err    error
}

func (r *reader) value(name string) (string, bool) {
	v := strings.TrimSpace(r.getenv(name))
	return v, v != "" && r.err == nil
}

func (r *reader) fail(name, format string, args ...any) {
	r.err = fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
}

func (r *reader) oneOf(name string, dst *string, allowed ...string) {
	if v, ok := r.value(name); ok {
		if !slices.Contains(allowed, v) {
			r.fail(name, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
			return
		}
		*dst = v
	}
}

func (r *reader) str(name string, dst *string) {
	if v, ok := r.value(name); ok {
		*dst = v
	}
}

// hostPort reads host:port with a numeric port; emptyHost allows ":port".
func (r *reader) hostPort(name string, dst *string, emptyHost bool) {
	if v, ok := r.value(name); ok {
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			r.fail(name, "must be host:port, got %q", v)
			return
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			r.fail(name, "port must be a number from 0 to 65535, got %q", v)
			return
		}
		if host == "" && !emptyHost {
			r.fail(name, "must name a host, got %q", v)
			return
		}
		*dst = v
	}
}

// databaseURL checks that the URL parses, so a typo fails at start-up with
// the variable's name rather than at the first connection.
func (r *reader) databaseURL(name string, dst *string) {
	if v, ok := r.value(name); ok {
		if _, err := pgxpool.ParseConfig(v); err != nil {
			r.fail(name, "is not a PostgreSQL URL (postgres://user:password@host:5432/db?sslmode=disable): %v", err)
			return
		}
		*dst = v
	}
}

func (r *reader) email(name string, dst *string) {
	if v, ok := r.value(name); ok {
		if _, err := mail.ParseAddress(v); err != nil {
			r.fail(name, "must be an email address, got %q", v)
			return
		}
		*dst = v
	}
}

func (r *reader) boolean(name string, dst *bool) {
	if v, ok := r.value(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.fail(name, "must be true or false, got %q", v)
			return
		}
		*dst = b
	}
}

func (r *reader) positiveInt(name string, dst *int) {
	if v, ok := r.value(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			r.fail(name, "must be a positive whole number, got %q", v)
			return
		}
		*dst = n
	}
}

func (r *reader) nonNegativeInt(name string, dst *int) {
	if v, ok := r.value(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			r.fail(name, "must be a whole number, 0 or more, got %q", v)
			return
		}
		*dst = n
	}
}

func (r *reader) duration(name string, dst *time.Duration) {
	if v, ok := r.value(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			r.fail(name, "must be a positive duration such as 2s or 500ms, got %q", v)
			return
		}
		*dst = d
	}
}

func (r *reader) positiveDecimal(name string, dst *decimal.Decimal) {
	if v, ok := r.value(name); ok {
		d, fe := copytrade.ParseAmount(name, v)
		if fe != nil {
			r.err = fe
			return
		}
		if !d.IsPositive() {
			r.fail(name, "must be positive, got %s", v)
			return
		}
		*dst = d
	}
}
