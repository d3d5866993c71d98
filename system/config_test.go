package system

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// env is a getenv over a map.
func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// Each bad value fails LoadConfig with an error that starts with the
// variable's name, and names no other variable: the operator reads which
// one to fix. LoadConfig is the first thing the worker and the CLI do, so a
// failure here means nothing else started (worker/main_test.go shows it for
// the binary).
func TestLoadConfigNamesTheBadVariable(t *testing.T) {
	// The certificate and key are one setting: set alone, the error names
	// the missing one.
	named := map[string]string{"TEMPORAL_TLS_CERT": "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_KEY": "TEMPORAL_TLS_CERT"}
	for _, tc := range []struct{ name, value string }{
		{"TEMPORAL_ADDRESS", "localhost"},
		{"TEMPORAL_ADDRESS", ":7233"},
		{"TEMPORAL_ADDRESS", "temporal:port"},
		{"TEMPORAL_TLS", "yes please"},
		{"TEMPORAL_GRPC_COMPRESSION", "brotli"},
		{"DATABASE_URL", "postgres://smartcopy@db:notaport/smartcopy"},
		{"DATABASE_URL", "not a url"},
		{"DATABASE_MAX_CONNS", "0"},
		{"DATABASE_MAX_CONNS", "many"},
		{"SMARTCOPY_MAX_CONCURRENT_ACTIVITIES", "-1"},
		{"SMARTCOPY_MAX_CONCURRENT_WORKFLOW_TASKS", "1.5"},
		{"SMARTCOPY_WORKFLOW_TASK_POLLERS", "0"},
		{"SMARTCOPY_ACTIVITY_TASK_POLLERS", "two"},
		{"SMARTCOPY_STICKY_SCHEDULE_TO_START", "20"},
		{"SMTP_ADDR", "mail.example.com"},
		{"SMTP_FROM", "not an address"},
		{"METRICS_ADDR", "9090"},
		{"METRICS_ADDR", ":99999"},
		{"SMARTCOPY_RISK_SWEEP_INTERVAL", "2"},
		{"SMARTCOPY_RISK_SWEEP_INTERVAL", "-1s"},
		{"SMARTCOPY_MIN_INVESTMENT", "0"},
		{"SMARTCOPY_MIN_INVESTMENT", "a hundred"},
		{"SMARTCOPY_MAX_FOLLOWERS_PER_TRADER", "0"},
		{"SMARTCOPY_MAX_TRADERS_PER_FOLLOWER", "twenty"},
		{"SMARTCOPY_SPREAD_TOLERANCE", "1"},
		{"SMARTCOPY_SPREAD_TOLERANCE", "-0.005"},
		{"SMARTCOPY_GAP_HOLD_BACK", "soon"},
		{"SMARTCOPY_HISTORY_LIMIT", "-5"},
		{"TEMPORAL_TLS_CERT", "client.pem"},
		{"TEMPORAL_TLS_KEY", "client.key"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			want := cmp.Or(named[tc.name], tc.name)
			_, err := LoadConfig(env(map[string]string{tc.name: tc.value}))
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.name, tc.value)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, want+": ") {
				t.Errorf("error does not start with %q: %q", want+": ", msg)
			}
			for _, v := range Variables {
				if v.Name != want && v.Name != tc.name && names(msg, v.Name) {
					t.Errorf("error names %s as well: %q", v.Name, msg)
				}
			}
		})
	}
}

// names reports whether msg mentions the variable as a whole word
// (TEMPORAL_TLS is not in TEMPORAL_TLS_CERT).
func names(msg, variable string) bool {
	return regexp.MustCompile(`\b` + variable + `\b`).MatchString(msg)
}

// Good values are read as given; unset variables keep their defaults.
func TestLoadConfigReadsGoodValues(t *testing.T) {
	cfg, err := LoadConfig(env(map[string]string{
		"TEMPORAL_ADDRESS":                    "my-ns.a1b2c.tmprl.cloud:7233",
		"TEMPORAL_NAMESPACE":                  "my-ns.a1b2c",
		"TEMPORAL_API_KEY":                    "key",
		"DATABASE_URL":                        "postgres://smartcopy:pw@db:5432/smartcopy?sslmode=require",
		"DATABASE_MAX_CONNS":                  "64",
		"SMARTCOPY_TASK_QUEUE":                "smartcopy-eu",
		"SMARTCOPY_MAX_CONCURRENT_ACTIVITIES": "64",
		"SMTP_ADDR":                           "mail.example.com:587",
		"SMTP_FROM":                           "Smart Copy <copy@example.com>",
		"METRICS_ADDR":                        ":9090",
		"SMARTCOPY_RISK_SWEEP_INTERVAL":       "500ms",
		"SMARTCOPY_MIN_INVESTMENT":            "50",
		"SMARTCOPY_SPREAD_TOLERANCE":          " 0.01 ",
		"SMARTCOPY_HISTORY_LIMIT":             "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	if cfg.TemporalAddress != "my-ns.a1b2c.tmprl.cloud:7233" || cfg.TemporalNamespace != "my-ns.a1b2c" || cfg.TemporalAPIKey != "key" ||
		cfg.DatabaseMaxConns != 64 || cfg.TaskQueue != "smartcopy-eu" || cfg.MaxConcurrentActivities != 64 ||
		cfg.MaxConcurrentWorkflowTasks != want.MaxConcurrentWorkflowTasks || cfg.SMTPAddr != "mail.example.com:587" ||
		cfg.MetricsAddr != ":9090" || cfg.RiskSweepInterval != 500*time.Millisecond {
		t.Errorf("config = %+v", cfg)
	}
	rules := cfg.Workflow.Rules
	if !rules.MinInvestment.Equal(decimal.NewFromInt(50)) || !rules.SpreadTolerance.Equal(decimal.RequireFromString("0.01")) ||
		rules.MaxFollowersPerTrader != want.Workflow.Rules.MaxFollowersPerTrader {
		t.Errorf("rules = %+v", rules)
	}
}

// Variables is the documented list (README, docker-compose.yml): it must
// hold exactly the names LoadConfig reads.
func TestVariablesListsEverythingLoadConfigReads(t *testing.T) {
	var read []string
	if _, err := LoadConfig(func(name string) string { read = append(read, name); return "" }); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, v := range Variables {
		listed = append(listed, v.Name)
	}
	slices.Sort(read)
	slices.Sort(listed)
	if !slices.Equal(read, listed) {
		t.Errorf("LoadConfig reads %v\nVariables lists %v", read, listed)
	}
}
