package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/devstack"
	"smartcopy/internal/testenv"
)

// The tests that reach a database share one dev server, started by the
// first of them: the flag tests and the fuzz targets need none.
var (
	serverOnce sync.Once
	server     *devstack.Temporal
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.Stop()
	}
	os.Exit(code)
}

func needServer(t *testing.T) *devstack.Temporal {
	t.Helper()
	serverOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		server, serverErr = testenv.StartTemporal(ctx)
	})
	if serverErr != nil {
		t.Fatalf("start Temporal dev server: %v", serverErr)
	}
	return server
}

// cliOn points the CLI at the test's system, through the variables a user
// would set.
func cliOn(t *testing.T, e *testenv.Env) {
	t.Setenv("DATABASE_URL", e.DBURL)
	t.Setenv("TEMPORAL_ADDRESS", e.Temporal.Address)
	t.Setenv("TEMPORAL_NAMESPACE", e.Temporal.Namespace)
	t.Setenv("SMARTCOPY_TASK_QUEUE", e.Config.TaskQueue)
}

func num(t *testing.T, s string) decimal.Decimal {
	t.Helper()
	return decimal.RequireFromString(s)
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dbSnapshot is every row a refused command must leave as it was.
func dbSnapshot(t *testing.T, e *testenv.Env) string {
	t.Helper()
	var s string
	ok(t, e.Pool.QueryRow(context.Background(), `select concat_ws(E'\n',
		(select string_agg(id || '=' || balance, ', ' order by id) from ledger_accounts),
		(select 'transactions ' || count(*) from ledger_transactions),
		(select 'orders ' || count(*) from orders),
		(select 'events ' || count(*) from trader_events),
		(select string_agg(id || ' ' || status || ' ' || investment || ' ' || stop_loss || ' ' || stop_mode, ', ' order by id) from relationships),
		(select 'investment changes ' || count(*) from investment_changes),
		(select string_agg(inst_id || '=' || price, ', ' order by inst_id) from mark_prices),
		(select string_agg(id || ' ' || email, ', ' order by id) from followers))`).Scan(&s))
	return s
}

// R25 for the CLI where only the database knows: an unknown instrument, a
// follower who does not follow the trader, a relationship that has ended,
// a raise beyond the balance, a close beyond the trader's book. Each is
// refused naming the flag, and no row changes.
func TestRefusalsFromTheDatabaseChangeNothing_R25(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, needServer(t), testenv.Options{})
	cliOn(t, e)
	trader, alice, bob, carol := e.ID("trader"), e.ID("alice"), e.ID("bob"), e.ID("carol")
	ok(t, e.Store.RegisterTrader(ctx, trader, num(t, "10000")))
	ok(t, e.Store.SetMarkPrice(ctx, "BTC-USDT-SWAP", num(t, "60000")))
	for f, amount := range map[string]string{alice: "2000", bob: "1000", carol: "500"} {
		_, err := e.Store.Deposit(ctx, f, num(t, amount), "deposit/"+f)
		ok(t, err)
	}
	_, err := runArgs(t, "follow", "-follower", alice, "-trader", trader, "-investment", "1000")
	ok(t, err)
	_, err = runArgs(t, "publish", "-trader", trader, "-event", e.ID("open"), "-kind", "open", "-inst", "BTC-USDT-SWAP",
		"-side", "long", "-mode", "cross", "-leverage", "5", "-margin", "1000", "-equity", "10000", "-price", "60000", "-size", "8.33")
	ok(t, err)
	e.WaitApplied(ctx, alice, trader, 1)
	_, err = runArgs(t, "follow", "-follower", carol, "-trader", trader, "-investment", "100")
	ok(t, err)
	_, err = runArgs(t, "unfollow", "-follower", carol, "-trader", trader)
	ok(t, err)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"price", "-inst", "NOPE-USDT-SWAP", "-price", "100"}, "-inst: unknown instrument"},
		{[]string{"invest", "-follower", bob, "-trader", trader, "-raise", "10"}, "-trader: " + bob + " does not follow " + trader},
		{[]string{"invest", "-follower", carol, "-trader", trader, "-raise", "10"}, "-trader: " + carol + "'s relationship with " + trader + " has ended"},
		{[]string{"invest", "-follower", alice, "-trader", trader, "-raise", "1000000"}, "-raise: available balance 1000 USDT is less than 1000000"},
		{[]string{"invest", "-follower", alice, "-trader", trader, "-lower", "901"}, "-lower: can release at most the fund's available 900.151 USDT"},
		{[]string{"stoploss", "-follower", bob, "-trader", trader, "-amount", "10"}, "-trader: " + bob + " does not follow " + trader},
		{[]string{"stoploss", "-follower", carol, "-trader", trader, "-amount", "10"}, "-trader: " + carol + "'s relationship with " + trader + " has ended"},
		{[]string{"unfollow", "-follower", bob, "-trader", trader}, "-trader: " + bob + " does not follow " + trader},
		{[]string{"status", "-follower", bob, "-trader", trader}, "-trader: " + bob + " does not follow " + trader},
		{[]string{"orders", "-follower", bob, "-trader", trader}, "-trader: " + bob + " has never followed " + trader},
		{[]string{"follow", "-follower", bob, "-trader", trader, "-investment", "5000"}, "-investment: available balance 1000 USDT is less than 5000"},
		{[]string{"follow", "-follower", bob, "-trader", e.ID("nobody"), "-investment", "100"}, "-trader: unknown trader"},
		{[]string{"follow", "-follower", alice, "-trader", trader, "-investment", "100"}, "-trader: " + alice + " already follows " + trader},
		{[]string{"publish", "-trader", trader, "-event", e.ID("close"), "-kind", "close", "-inst", "BTC-USDT-SWAP", "-side", "long",
			"-price", "60000", "-size", "100"}, "-size: closes 100 but the trader holds 8.33"},
	} {
		t.Run(strings.Join(tc.args[:1], " ")+" "+tc.want, func(t *testing.T) {
			before := dbSnapshot(t, e)
			_, err := runArgs(t, tc.args...)
			var usage usageError
			if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("%q: want a refusal starting %q, got %v", tc.args, tc.want, err)
			}
			if after := dbSnapshot(t, e); after != before {
				t.Errorf("%q changed the database:\nbefore:\n%s\nafter:\n%s", tc.args, before, after)
			}
		})
	}
	// The refusals left alice's relationship as it was.
	st := e.WaitApplied(ctx, alice, trader, 1)
	if !st.Settings.Investment.Equal(num(t, "1000")) || len(st.Fund.Positions) != 1 {
		t.Errorf("alice after the refusals: investment %s, positions %+v", st.Settings.Investment, st.Fund.Positions)
	}
}

// The audit command prints what it checked and passes on a clean system;
// with a difference planted it names it and fails (exit 1).
func TestAuditCommand(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, needServer(t), testenv.Options{})
	cliOn(t, e)
	trader, alice := e.ID("trader"), e.ID("alice")
	ok(t, e.Store.RegisterTrader(ctx, trader, num(t, "10000")))
	ok(t, e.Store.SetMarkPrice(ctx, "ETH-USDT-SWAP", num(t, "3000")))
	_, err := e.Store.Deposit(ctx, alice, num(t, "2000"), "deposit/"+alice)
	ok(t, err)
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: alice, TraderID: trader, Investment: num(t, "1000")})
	ok(t, err)
	rep, err := e.Publisher.Publish(ctx, copytrade.TraderEvent{EventID: e.ID("open"), TraderID: trader, Kind: copytrade.EventOpen,
		InstID: "ETH-USDT-SWAP", Side: copytrade.Short, MarginMode: copytrade.Isolated, Leverage: num(t, "3"), Margin: num(t, "500"),
		Equity: num(t, "10000"), Price: num(t, "3000"), Size: num(t, "5")})
	ok(t, err)
	e.WaitApplied(ctx, alice, trader, rep.Event.Seq)

	out, err := runArgs(t, "audit", "-settle", "1s")
	if err != nil {
		t.Fatalf("audit of a clean system: %v\n%s", err, out)
	}
	for _, want := range []string{"checked transactions balance:", "checked one order per event:", "checked workflow positions:", "audit passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit output lacks %q:\n%s", want, out)
		}
	}

	_, err = e.Pool.Exec(ctx, `update positions set margin = margin + 1 where relationship_id = $1`, res.RelationshipID)
	ok(t, err)
	out, err = runArgs(t, "audit", "-settle", "500ms")
	var usage usageError
	if err == nil || errors.As(err, &usage) || !strings.Contains(err.Error(), "audit found 1 difference") {
		t.Errorf("audit with a planted difference: want a failure (exit 1), got %v", err)
	}
	want := fmt.Sprintf("DIFFERENCE workflow positions: relationship %s", res.RelationshipID)
	if !strings.Contains(out, want) || !strings.Contains(out, "audit FAILED") {
		t.Errorf("audit output does not name the difference %q:\n%s", want, out)
	}
}
