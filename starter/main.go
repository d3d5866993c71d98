// Command starter is smartcopy's command line: it runs the whole local
// system with a demo (up), and speaks for followers (deposit, follow,
// invest, stoploss, unfollow, status, orders, inbox), for the upstream trade
// feed (trader, publish), for the market (price) and for operators (list,
// audit, migrate).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

var commands = []command{
	{"up", "run everything locally (Temporal dev server, PostgreSQL, worker) with a demo, until Ctrl-C", cmdUp},
	{"demo", "run the demo against a running system", cmdDemo},
	{"migrate", "apply the PostgreSQL schema", cmdMigrate},
	{"deposit", "add USDT to a follower's available balance", cmdDeposit},
	{"trader", "register a lead trader with an account equity", cmdTrader},
	{"price", "set an instrument's mark price", cmdPrice},
	{"follow", "follow a lead trader with an investment amount", cmdFollow},
	{"invest", "raise or lower a relationship's investment", cmdInvest},
	{"stoploss", "set or clear a relationship's stop loss", cmdStopLoss},
	{"unfollow", "stop following a trader; positions per the stop setting, then funds released", cmdUnfollow},
	{"status", "a relationship's settings, fund figures, positions and status", cmdStatus},
	{"orders", "a relationship's orders with sizing inputs and failure reasons", cmdOrders},
	{"list", "relationships of a trader or a follower (from PostgreSQL)", cmdList},
	{"find", "relationship workflows matching a Temporal query, e.g. -query 'TraderID=\"t1\" AND CopyStatus=\"active\"'", cmdFind},
	{"inbox", "a follower's in-app notifications", cmdInbox},
	{"publish", "publish a lead trader event to every follower (signal-with-start)", cmdPublish},
	{"audit", "check the ledger and every relationship against PostgreSQL and the workflows", cmdAudit},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printUsage(out)
		if len(args) == 0 {
			return usageError{"a command is required"}
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			e := &env{out: out}
			defer e.close()
			return c.run(ctx, e, args[1:])
		}
	}
	return usageError{fmt.Sprintf("unknown command %q (run 'starter help')", args[0])}
}

func printUsage(out io.Writer) {
	fmt.Fprintln(out, "usage: starter <command> [flags]   (starter <command> -h for its flags)")
	fmt.Fprintln(out)
	for _, c := range commands {
		fmt.Fprintf(out, "  %-9s %s\n", c.name, c.summary)
	}
}

// usageError is bad command-line input: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// flags is a subcommand's flag set with helpers that parse and check values
// and name the flag in every error. Every value is checked before a
// command connects to anything: bad input touches no database.
type flags struct {
	*flag.FlagSet
	out      io.Writer
	decimals map[string]*string
}

// flags starts a subcommand's flag set; -h prints its flags to e's output.
func (e *env) flags(name string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{FlagSet: fs, out: e.out, decimals: map[string]*string{}}
}

func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.SetOutput(f.out)
			f.PrintDefaults()
			return err
		}
		return usageError{err.Error()}
	}
	if f.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", f.Arg(0))}
	}
	return nil
}

// required reads a string flag that must be set.
func (f *flags) required(name string, value *string) error {
	if strings.TrimSpace(*value) == "" {
		return usageError{fmt.Sprintf("-%s is required", name)}
	}
	return nil
}

// id reads an id flag: required and well-formed.
func (f *flags) id(name string, value *string) error {
	if fe := copytrade.ValidateID(name, *value); fe != nil {
		return usageError{"-" + fe.Error()}
	}
	return nil
}

// optionalID reads an id flag that may be left out.
func (f *flags) optionalID(name string, value *string) error {
	if *value == "" {
		return nil
	}
	return f.id(name, value)
}

// decimal defines a decimal flag; read it with number after parse.
func (f *flags) decimal(name, usage string) {
	f.decimals[name] = f.String(name, "", usage)
}

// rule is what a decimal flag's value must be. Every rule also refuses
// what is not a finite number, more than copytrade.MaxAmount, or more
// decimal places than money has (copytrade.MoneyScale).
type rule int

const (
	// money is a positive amount of USDT.
	money rule = iota
	// positive is a positive figure: a leverage, a size, a price.
	positive
	// zeroOrMoney is an amount of USDT where zero means none (a stop loss).
	zeroOrMoney
	// change is a signed, non-zero change (margin added or removed).
	change
)

// number parses a decimal flag under its rule. An optional flag left out
// gives zero.
func (f *flags) number(name string, r rule, optional bool) (decimal.Decimal, error) {
	text := *f.decimals[name]
	if optional && strings.TrimSpace(text) == "" {
		return decimal.Zero, nil
	}
	d, fe := copytrade.ParseAmount(name, text)
	if fe != nil {
		return decimal.Zero, usageError{"-" + fe.Error()}
	}
	bad := func(format string, args ...any) (decimal.Decimal, error) {
		return decimal.Zero, usageError{fmt.Sprintf("-%s: ", name) + fmt.Sprintf(format, args...)}
	}
	switch {
	case r == money && !d.IsPositive():
		return bad("must be a positive amount of USDT, got %s", d)
	case r == positive && !d.IsPositive():
		return bad("must be positive, got %s", d)
	case r == zeroOrMoney && d.IsNegative():
		return bad("must not be negative (0 means none), got %s", d)
	case r == change && d.IsZero():
		return bad("must not be zero")
	case !d.Equal(d.Round(copytrade.MoneyScale)):
		return bad("has more than %d decimal places", copytrade.MoneyScale)
	}
	return d, nil
}

// asFlags words a refusal that names a field (a FieldError, from the
// request's validation or the database) by the command's flag for that
// field, so the user sees what to change on the command line.
func asFlags(err error, flagOf map[string]string) error {
	var fe *copytrade.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	name, ok := flagOf[fe.Field]
	if !ok {
		name = strings.ReplaceAll(fe.Field, "_", "-")
	}
	return usageError{"-" + name + ": " + fe.Reason}
}
