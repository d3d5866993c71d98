package audit_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/activities"
	"smartcopy/audit"
	"smartcopy/copytrade"
	"smartcopy/devstack"
	"smartcopy/internal/testenv"
	"smartcopy/ledger"
	"smartcopy/workflows"
)

var server *devstack.Temporal

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	var err error
	server, err = testenv.StartTemporal(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit: start Temporal dev server:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The SQL spells the ids the Go code builds; this fails if they drift.
func TestOrderIDsAsTheSQLSpellsThem(t *testing.T) {
	if got := activities.ClientOrderID("r", "e"); got != "r:e" {
		t.Errorf("a copy's client order id is %q, the audit expects r:e", got)
	}
	stop := copytrade.PositionKey{InstID: "BTC-USDT-SWAP", Side: copytrade.Long}
	if got := activities.ClientOrderID("r", workflows.StopUnfollow+"/"+stop.String()); got != "r:unfollow/BTC-USDT-SWAP/long" {
		t.Errorf("a stop close's client order id is %q, the audit expects r:unfollow/BTC-USDT-SWAP/long", got)
	}
	if got := ledger.Fund(""); got != "fund:" {
		t.Errorf("fund accounts are named %q+id, the audit expects fund:", got)
	}
}

// A session that leaves every kind of row the audit reads: copies of
// opens and closes, a leverage sync, a copy of an existing position, the
// market closes of an unfollow and an ended relationship. The audit passes
// on it, then names each difference planted in PostgreSQL and goes back to
// passing once it is removed.
func TestAuditFindsPlantedDifferences(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, alice, bob := e.ID("trader"), e.ID("alice"), e.ID("bob")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, "BTC-USDT-SWAP", d("60000")))
	for _, f := range []string{alice, bob} {
		_, err := e.Store.Deposit(ctx, f, d("2000"), "deposit/"+f)
		must(t, err)
	}
	aliceRel, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: alice, TraderID: trader, Investment: d("1000")})
	must(t, err)
	publish := func(ev copytrade.TraderEvent) {
		t.Helper()
		rep, err := e.Publisher.Publish(ctx, ev)
		must(t, err)
		e.WaitApplied(ctx, alice, trader, rep.Event.Seq)
	}
	publish(copytrade.TraderEvent{EventID: e.ID("open"), TraderID: trader, Kind: copytrade.EventOpen, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, MarginMode: copytrade.Isolated, Leverage: d("5"), Margin: d("1000"), Equity: d("10000"),
		Price: d("60000"), Size: d("8.33")})
	bobRel, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: bob, TraderID: trader, Investment: d("500"), CopyExisting: true})
	must(t, err)
	e.WaitState(ctx, bob, trader, "existing position copied", func(s workflows.State) bool { return len(s.Fund.Positions) == 1 })
	publish(copytrade.TraderEvent{EventID: e.ID("lev"), TraderID: trader, Kind: copytrade.EventLeverage, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, Leverage: d("10")})
	publish(copytrade.TraderEvent{EventID: e.ID("close"), TraderID: trader, Kind: copytrade.EventClose, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, Price: d("60000"), Size: d("4.16")})
	un, err := e.API.Unfollow(ctx, bob, trader)
	must(t, err)
	if un.Status != workflows.StatusEnded {
		t.Fatalf("bob's unfollow: status %s, want ended", un.Status)
	}

	run := func() audit.Report {
		t.Helper()
		rep, err := audit.Run(ctx, e.API, audit.Options{Settle: 300 * time.Millisecond})
		must(t, err)
		return rep
	}
	rep := run()
	if !rep.OK() {
		t.Fatalf("audit of a clean session: %q", rep.Differences)
	}
	rows := map[string]int{}
	for _, c := range rep.Checks {
		rows[c.Name] = c.Rows
	}
	// alice: open, close; bob: existing copy, close, unfollow close.
	for name, want := range map[string]int{
		"order ids": 5, "orders of relationships": 5, "orders of trader events": 5,
		"one order per event": 5, "syncs of trader events": 2, "ended relationships": 1,
		"workflow positions": 1, "follower money": 2, "transactions balance": 10,
	} {
		if rows[name] != want {
			t.Errorf("check %q compared %d rows, want %d", name, rows[name], want)
		}
	}
	var out strings.Builder
	rep.Print(&out)
	if !strings.Contains(out.String(), "audit passed") || !strings.Contains(out.String(), "checked workflow positions:") {
		t.Errorf("printed report:\n%s", out.String())
	}

	aliceOpen := activities.ClientOrderID(aliceRel.RelationshipID, e.ID("open"))
	for _, tc := range []struct {
		name         string
		plant, clear string
		want         []string
	}{
		{
			name:  "a position the workflow does not know",
			plant: `update positions set size = size + 0.01 where relationship_id = '` + aliceRel.RelationshipID + `'`,
			clear: `update positions set size = size - 0.01 where relationship_id = '` + aliceRel.RelationshipID + `'`,
			want: []string{"workflow positions: relationship " + aliceRel.RelationshipID + " (workflow " + workflows.WorkflowID(alice, trader) +
				"): on BTC-USDT-SWAP/long the workflow holds 0.42 contracts"},
		},
		{
			name: "a second order for one trader event",
			plant: `insert into orders (client_order_id, relationship_id, follower_id, trader_id, trader_event_id, inst_id, side, action, status)
				select 'again', relationship_id, follower_id, trader_id, trader_event_id, inst_id, side, action, 'rejected'
				from orders where client_order_id = '` + aliceOpen + `'`,
			clear: `delete from orders where client_order_id = 'again'`,
			want: []string{
				"order ids: order again (relationship " + aliceRel.RelationshipID + ", trader event " + e.ID("open") + ") does not carry the id derived from them",
				"one order per event: relationship " + aliceRel.RelationshipID + " has 2 orders for trader event " + e.ID("open") + ": " + aliceOpen + " filled, again rejected",
			},
		},
		{
			name: "an order for an event the trader never sent",
			plant: `insert into orders (client_order_id, relationship_id, follower_id, trader_id, trader_event_id, inst_id, side, action, status)
				values ('` + aliceRel.RelationshipID + `:ghost', '` + aliceRel.RelationshipID + `', '` + alice + `', '` + trader + `', 'ghost', 'BTC-USDT-SWAP', 'long', 'open', 'rejected')`,
			clear: `delete from orders where trader_event_id = 'ghost'`,
			want:  []string{"orders of trader events: order " + aliceRel.RelationshipID + ":ghost copies trader event ghost, which trader " + trader + " never sent"},
		},
		{
			name:  "an order of another follower",
			plant: `update orders set follower_id = '` + bob + `' where client_order_id = '` + aliceOpen + `'`,
			clear: `update orders set follower_id = '` + alice + `' where client_order_id = '` + aliceOpen + `'`,
			want: []string{"orders of relationships: order " + aliceOpen + " is for " + bob + " following " + trader + ", but relationship " +
				aliceRel.RelationshipID + " is " + alice + " following " + trader},
		},
		{
			name:  "a sync without its trader event",
			plant: `update risk_syncs set trader_event_id = 'ghost' where relationship_id = '` + aliceRel.RelationshipID + `'`,
			clear: `update risk_syncs set trader_event_id = '` + e.ID("lev") + `' where relationship_id = '` + aliceRel.RelationshipID + `'`,
			want:  []string{"syncs of trader events: sync " + aliceRel.RelationshipID + ":" + e.ID("lev") + " applies trader event ghost, which trader " + trader + " never sent"},
		},
		{
			name:  "a balance edited in place",
			plant: `update ledger_accounts set balance = balance + 0.01 where id = '` + ledger.Fund(aliceRel.RelationshipID) + `'`,
			clear: `update ledger_accounts set balance = balance - 0.01 where id = '` + ledger.Fund(aliceRel.RelationshipID) + `'`,
			want:  []string{"account balances: account " + ledger.Fund(aliceRel.RelationshipID) + " has balance"},
		},
		{
			name: "an ended relationship still holding a position",
			plant: `insert into positions (relationship_id, inst_id, side, size, avg_price, leverage, margin_mode, margin)
				values ('` + bobRel.RelationshipID + `', 'BTC-USDT-SWAP', 'short', 1, 60000, 5, 'cross', 0)`,
			clear: `delete from positions where relationship_id = '` + bobRel.RelationshipID + `'`,
			want:  []string{"ended relationships: relationship " + bobRel.RelationshipID + " has ended but still holds positions"},
		},
		{
			name:  "a projection that says active where the workflow has ended",
			plant: `update relationships set status = 'active' where id = '` + bobRel.RelationshipID + `'`,
			clear: `update relationships set status = 'ended' where id = '` + bobRel.RelationshipID + `'`,
			want: []string{"workflow positions: relationship " + bobRel.RelationshipID + " (workflow " + workflows.WorkflowID(bob, trader) +
				"): the workflow is ended, the projection says active"},
		},
		{
			name: "a live relationship without a workflow",
			plant: `insert into followers (id) values ('ghost-` + e.Prefix + `');
				insert into relationships (id, workflow_id, follower_id, trader_id, status, investment, stop_mode, trader_seq_at_follow)
				values ('ghost-rel', 'copy/ghost-` + e.Prefix + `/` + trader + `', 'ghost-` + e.Prefix + `', '` + trader + `', 'active', 0, 'market_close', 0)`,
			clear: `delete from relationships where id = 'ghost-rel'; delete from followers where id = 'ghost-` + e.Prefix + `'`,
			want: []string{"workflow positions: relationship ghost-rel (workflow copy/ghost-" + e.Prefix + "/" + trader +
				"): the workflow did not answer its state query"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Pool.Exec(ctx, tc.plant)
			must(t, err)
			rep := run()
			_, err = e.Pool.Exec(ctx, tc.clear)
			must(t, err)
			for _, want := range tc.want {
				if !hasDiff(rep, want) {
					t.Errorf("the audit does not report %q; it reports %q", want, rep.Differences)
				}
			}
			var out strings.Builder
			rep.Print(&out)
			if !strings.Contains(out.String(), "DIFFERENCE "+tc.want[0]) || !strings.Contains(out.String(), "audit FAILED") {
				t.Errorf("printed report does not show the difference:\n%s", out.String())
			}
			if rep := run(); !rep.OK() {
				t.Fatalf("audit after clearing the plant: %q", rep.Differences)
			}
		})
	}
}

func hasDiff(r audit.Report, prefix string) bool {
	for _, d := range r.Differences {
		if strings.HasPrefix(d, prefix) {
			return true
		}
	}
	return false
}
