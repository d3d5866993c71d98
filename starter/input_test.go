package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// Bad command-line input must be refused before the command connects to
// anything. These tests point DATABASE_URL and TEMPORAL_ADDRESS at a port
// nothing listens on, so a command that tries to connect fails loudly with
// an error naming the variable: a refusal that names one did not check its
// flags first.
const (
	closedDB       = "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	closedTemporal = "127.0.0.1:1"
)

func closedPorts(t testing.TB) {
	t.Setenv("DATABASE_URL", closedDB)
	t.Setenv("TEMPORAL_ADDRESS", closedTemporal)
}

// connected reports whether err comes from trying to connect.
func connected(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "DATABASE_URL") || strings.Contains(err.Error(), "TEMPORAL_ADDRESS"))
}

// runArgs runs the CLI in the test process with a bound on time.
func runArgs(t testing.TB, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, &out)
	return out.String(), err
}

// valid are arguments each command accepts: with them, it goes on to
// connect. A case replaces or adds one flag.
var valid = map[string][]string{
	"migrate":  {},
	"demo":     {},
	"up":       {},
	"deposit":  {"-follower", "alice", "-amount", "10"},
	"trader":   {"-trader", "t1", "-equity", "1000"},
	"price":    {"-inst", "BTC-USDT-SWAP", "-price", "60000"},
	"follow":   {"-follower", "alice", "-trader", "t1", "-investment", "100"},
	"invest":   {"-follower", "alice", "-trader", "t1", "-raise", "10"},
	"stoploss": {"-follower", "alice", "-trader", "t1", "-amount", "10"},
	"unfollow": {"-follower", "alice", "-trader", "t1"},
	"status":   {"-follower", "alice", "-trader", "t1"},
	"orders":   {"-follower", "alice", "-trader", "t1"},
	"list":     {"-follower", "alice"},
	"find":     {"-trader", "t1"},
	"inbox":    {"-follower", "alice"},
	"publish": {"-trader", "t1", "-event", "e1", "-kind", "open", "-inst", "BTC-USDT-SWAP", "-side", "long", "-mode", "cross",
		"-leverage", "5", "-margin", "100", "-equity", "1000", "-price", "60000", "-size", "1"},
	"audit": {},
}

// with is the command's valid arguments with flag set to value, added if
// absent.
func with(cmd, flag, value string) []string {
	args := append([]string{cmd}, valid[cmd]...)
	for i := 1; i < len(args)-1; i += 2 {
		if args[i] == "-"+flag {
			args[i+1] = value
			return args
		}
	}
	return append(args, "-"+flag+"="+value)
}

// without is the command's valid arguments without flag.
func without(cmd, flag string) []string {
	args := append([]string{cmd}, valid[cmd]...)
	for i := 1; i < len(args)-1; i += 2 {
		if args[i] == "-"+flag {
			return append(args[:i:i], args[i+2:]...)
		}
	}
	return args
}

// Every command, with its valid arguments, gets as far as connecting: the
// cases below fail for their one bad value and nothing else.
func TestValidArgumentsReachTheConnection(t *testing.T) {
	closedPorts(t)
	for _, c := range commands {
		args, ok := valid[c.name]
		if !ok {
			t.Errorf("command %s has no valid arguments in this test: add it", c.name)
			continue
		}
		_, err := runArgs(t, append([]string{c.name}, args...)...)
		if !connected(err) {
			t.Errorf("%s %v: want a connection error, got %v", c.name, args, err)
		}
	}
}

// badNumbers are values no numeric flag takes.
var badNumbers = []string{"abc", "NaN", "nan", "Inf", "-Infinity", "1e400", "-1e400", "1,5", "0x10", "", " ", "0.123456789", "1e-9"}

// R25 for the CLI: every command and every flag with a bad value (negative,
// zero, huge, non-numeric, NaN, Inf, too many decimals, a malformed id, an
// unknown mode or kind, an unknown flag, a stray argument) is refused with
// a usage error naming the flag, before anything connects.
func TestBadFlagsAreRefusedBeforeConnecting_R25(t *testing.T) {
	closedPorts(t)
	type tc struct {
		args []string
		flag string // the error names -flag
	}
	var cases []tc
	add := func(cmd, flag string, values ...string) {
		for _, v := range values {
			cases = append(cases, tc{with(cmd, flag, v), flag})
		}
	}
	// missing: a required flag left out.
	missing := func(cmd string, flags ...string) {
		for _, flag := range flags {
			cases = append(cases, tc{without(cmd, flag), flag})
		}
	}
	for cmd, flag := range map[string]string{
		"deposit": "amount", "trader": "equity", "follow": "investment", "invest": "raise",
	} {
		add(cmd, flag, append(badNumbers, "-5", "0", "-0.01")...)
	}
	// -lower left empty is left out: -raise alone is valid.
	add("invest", "lower", "abc", "NaN", "Inf", "1e400", "0.123456789", "-5", "0x10")
	add("price", "price", append(badNumbers, "-5", "0")...)
	add("stoploss", "amount", append(badNumbers, "-5", "-0.01")...)
	add("follow", "stop-loss", "-5", "abc", "NaN", "Inf", "1e400", "0.123456789")
	add("follow", "investment", "99.99")
	add("follow", "stop-mode", "sideways", "MARKET_CLOSE")
	add("stoploss", "mode", "sideways", "MARKET_CLOSE")
	for _, flag := range []string{"leverage", "margin", "equity", "price", "size"} {
		add("publish", flag, "-5", "abc", "NaN", "Inf", "1e400", "0.123456789")
	}
	add("publish", "delta", "0", "abc", "NaN", "1e400")
	add("publish", "kind", "liquidate")
	add("publish", "side", "up")
	add("publish", "mode", "portfolio")
	missing("publish", "kind", "side", "mode", "inst", "event", "trader", "size")
	add("publish", "event", "a/b", "a b", strings.Repeat("e", 129))
	add("publish", "trader", "t/1")
	for _, cmd := range []string{"deposit", "follow", "invest", "stoploss", "unfollow", "status", "orders", "inbox"} {
		add(cmd, "follower", "a/b", "a b", strings.Repeat("f", 129))
		missing(cmd, "follower")
	}
	for _, cmd := range []string{"trader", "follow", "invest", "stoploss", "unfollow", "status", "orders"} {
		add(cmd, "trader", "t/1", "t\n1")
		missing(cmd, "trader")
	}
	add("follow", "trader", "alice") // following yourself
	add("list", "trader", "t/1")
	add("find", "trader", "t/1")
	add("price", "inst", " ")
	missing("price", "inst", "price")
	add("deposit", "email", "not-an-address", "a b@c")
	missing("deposit", "amount")
	missing("trader", "equity")
	missing("follow", "investment")
	missing("stoploss", "amount")
	add("audit", "settle", "0s", "-1s", "abc")
	add("up", "port", "0", "70000", "-1", "abc")
	add("up", "ui-port", "0", "65536")
	for _, c := range commands {
		cases = append(cases, tc{with(c.name, "bogus", "1"), "bogus"})
	}
	cases = append(cases,
		tc{[]string{"invest", "-follower", "alice", "-trader", "t1", "-raise", "10", "-lower", "10"}, "raise"},
		tc{[]string{"invest", "-follower", "alice", "-trader", "t1"}, "raise"},
		tc{[]string{"list"}, "follower"},
		tc{[]string{"find"}, "query"},
	)

	for _, c := range cases {
		_, err := runArgs(t, c.args...)
		var usage usageError
		switch {
		case err == nil:
			t.Errorf("%q: accepted", c.args)
		case connected(err):
			t.Errorf("%q: tried to connect before refusing: %v", c.args, err)
		case !errors.As(err, &usage):
			t.Errorf("%q: want a usage error (exit 2), got %T %v", c.args, err, err)
		case !strings.Contains(err.Error(), "-"+c.flag):
			t.Errorf("%q: the error does not name -%s: %v", c.args, c.flag, err)
		}
	}
	t.Logf("%d bad command lines refused before connecting", len(cases))
}

// A stray argument, help and an unknown command.
func TestCommandLineShape(t *testing.T) {
	closedPorts(t)
	if _, err := runArgs(t, "deposit", "-follower", "alice", "-amount", "10", "stray"); err == nil || !strings.Contains(err.Error(), `unexpected argument "stray"`) {
		t.Errorf("stray argument: %v", err)
	}
	if _, err := runArgs(t, "nosuch"); err == nil || !strings.Contains(err.Error(), `unknown command "nosuch"`) {
		t.Errorf("unknown command: %v", err)
	}
	out, err := runArgs(t, "deposit", "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "-amount") {
		t.Errorf("deposit -h: %v, printed %q", err, out)
	}
	out, err = runArgs(t, "help")
	if err != nil || !strings.Contains(out, "audit") {
		t.Errorf("help: %v, printed %q", err, out)
	}
}

// numberFlags are the numeric flags with the rule each follows, on a
// command line otherwise valid.
var numberFlags = []struct {
	cmd, flag string
	ok        func(decimal.Decimal) bool
	optional  bool
}{
	{"deposit", "amount", isMoney, false},
	{"trader", "equity", isMoney, false},
	{"price", "price", isPositive, false},
	{"follow", "investment", func(d decimal.Decimal) bool { return isMoney(d) && d.GreaterThanOrEqual(decimal.NewFromInt(100)) }, false},
	{"follow", "stop-loss", isZeroOrMoney, true},
	{"invest", "raise", isMoney, false},
	{"stoploss", "amount", isZeroOrMoney, false},
	{"publish", "leverage", isPositive, true},
	{"publish", "margin", isMoney, true},
	{"publish", "size", func(d decimal.Decimal) bool { return isPositive(d) }, false},
}

func finite(d decimal.Decimal) bool {
	return d.Abs().LessThanOrEqual(decimal.New(1, 15)) && d.Equal(d.Round(8))
}
func isMoney(d decimal.Decimal) bool       { return d.IsPositive() && finite(d) }
func isPositive(d decimal.Decimal) bool    { return d.IsPositive() && finite(d) }
func isZeroOrMoney(d decimal.Decimal) bool { return !d.IsNegative() && finite(d) }

// FuzzNumberFlags puts arbitrary text in each numeric flag of an otherwise
// valid command line. The spec of each flag decides: a value it allows
// lets the command go on to connect (and fail on the closed port); any
// other is refused with a usage error naming the flag, before connecting.
func FuzzNumberFlags(f *testing.F) {
	for _, s := range []string{"10", "100", "0", "-5", "1e400", "1e15", "1000000000000000.5", "NaN", "Inf", "abc", "", " 7 ",
		"0.00000001", "0.000000001", "1e-8", "1e-9", "100.00000000", "-0", "+5", ".5", "5.", "1_000", "١٠٠", "1e10000", "9999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		closedPorts(t)
		for _, nf := range numberFlags {
			args := with(nf.cmd, nf.flag, value)
			_, err := runArgs(t, args...)
			want := false
			if text := strings.TrimSpace(value); text == "" {
				want = nf.optional
			} else if d, perr := decimal.NewFromString(text); perr == nil {
				want = nf.ok(d)
			}
			if want {
				if !connected(err) {
					t.Errorf("%q: a value the flag allows was refused: %v", args, err)
				}
				continue
			}
			var usage usageError
			if connected(err) || !errors.As(err, &usage) || !strings.Contains(err.Error(), "-"+nf.flag) {
				t.Errorf("%q: want a usage error naming -%s before connecting, got %v", args, nf.flag, err)
			}
		}
	})
}

// FuzzRun gives the CLI arbitrary arguments (one per line of the input):
// it never panics, never hangs, answers with an error or output, and any
// connection it tries fails on the closed ports.
func FuzzRun(f *testing.F) {
	for cmd, args := range valid {
		f.Add(strings.Join(append([]string{cmd}, args...), "\n"))
	}
	for _, s := range []string{"", "help", "-h", "--help", "deposit\n-amount", "deposit\n-amount=", "follow\n--investment=1e400",
		"publish\n-kind\nmargin\n-delta\n-1e400", "invest\n-raise\n5\n-lower\n5", "up\n-port\n99999", "status\n-follower\n\x00",
		"stoploss\n-follower\na\n-trader\nb\n-amount\nInf", "list\n-live\n-follower\na/b", "audit\n-settle\n-5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		closedPorts(t)
		var args []string
		if input != "" {
			args = strings.Split(input, "\n")
		}
		start := time.Now()
		out, err := runArgs(t, args...)
		if time.Since(start) > 15*time.Second {
			t.Errorf("%q took %s", args, time.Since(start))
		}
		if err == nil && out == "" {
			t.Errorf("%q: no error and nothing printed", args)
		}
		if err != nil && err.Error() == "" {
			t.Errorf("%q: an error without a message", args)
		}
		var fe *copytrade.FieldError
		if errors.As(err, &fe) && (fe.Field == "" || fe.Reason == "") {
			t.Errorf("%q: a refusal without field or reason: %v", args, err)
		}
	})
}
