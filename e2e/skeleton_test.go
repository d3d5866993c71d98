package e2e

import (
	"context"
	"testing"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/ledger"
	"smartcopy/workflows"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func requireEqual(t *testing.T, what string, want string, got decimal.Decimal) {
	t.Helper()
	if !got.Equal(d(want)) {
		t.Errorf("%s: want %s, got %s", what, want, got)
	}
}

func balance(t *testing.T, e *testenv.Env, account string) decimal.Decimal {
	t.Helper()
	var b decimal.Decimal
	if err := e.Pool.QueryRow(context.Background(), `select balance from ledger_balances where id = $1`, account).Scan(&b); err != nil {
		t.Fatalf("balance of %s: %v", account, err)
	}
	return b
}

// The walking skeleton, end to end: follow (R1, R2), the seed's open (R6,
// R7), a partial close (R12, R14), unfollow with a market close and the
// release of the fund (R19, R22). Every figure is computed here by hand from
// the instrument's numbers, independently of the code under test.
func TestFollowOpenPartialCloseUnfollow(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, alice := e.ID("trader"), e.ID("alice")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, "BTC-USDT-SWAP", d("60000")))
	_, err := e.Store.Deposit(ctx, alice, d("1500"), "deposit/"+alice)
	must(t, err)

	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: alice, TraderID: trader, Investment: d("1000")})
	must(t, err)
	requireEqual(t, "available after follow (R2)", "500", mustBalance(t, e, alice))
	requireEqual(t, "fund after follow (R2)", "1000", balance(t, e, ledger.Fund(res.RelationshipID)))

	// The seed's example: equity 10,000, 1,000 margin at 5x cross long.
	open := copytrade.TraderEvent{EventID: e.ID("e1"), TraderID: trader, Kind: copytrade.EventOpen, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, MarginMode: copytrade.Cross, Leverage: d("5"), Margin: d("1000"), Equity: d("10000"),
		Price: d("60000"), Size: d("8.33")}
	rep, err := e.Publisher.Publish(ctx, open)
	must(t, err)
	if rep.Delivered != 1 {
		t.Fatalf("open delivered to %d relationships, want 1", rep.Delivered)
	}
	st := e.WaitApplied(ctx, alice, trader, rep.Event.Seq)
	// ratio 10% → 100 USDT margin; 100 x 5 / (60,000 x 0.01) = 0.8333 → 0.83
	// contracts (lot 0.01); notional 498, margin 99.6, fee 498 x 0.0005.
	if len(st.Fund.Positions) != 1 {
		t.Fatalf("positions after open: %+v", st.Fund.Positions)
	}
	p := st.Fund.Positions[0]
	requireEqual(t, "size (R7)", "0.83", p.Size)
	requireEqual(t, "margin (R6)", "99.6", p.Margin)
	requireEqual(t, "leverage", "5", p.Leverage)
	if p.MarginMode != copytrade.Cross || p.Side != copytrade.Long {
		t.Errorf("mode/side: %s %s", p.MarginMode, p.Side)
	}
	requireEqual(t, "fees after open", "0.249", st.Fund.Figures.Fees)

	// The trader closes 4.16 of 8.33 at 61,500: the follower closes the same
	// fraction, 0.83 x 4.16/8.33 = 0.4145 → 0.41 contracts.
	must(t, e.Store.SetMarkPrice(ctx, "BTC-USDT-SWAP", d("61500")))
	closeEv := copytrade.TraderEvent{EventID: e.ID("e2"), TraderID: trader, Kind: copytrade.EventClose, InstID: "BTC-USDT-SWAP",
		Side: copytrade.Long, Price: d("61500"), Size: d("4.16")}
	rep, err = e.Publisher.Publish(ctx, closeEv)
	must(t, err)
	st = e.WaitApplied(ctx, alice, trader, rep.Event.Seq)
	p = st.Fund.Positions[0]
	requireEqual(t, "size after partial close (R12)", "0.42", p.Size)
	requireEqual(t, "average price unchanged (R12)", "60000", p.AvgPrice)
	requireEqual(t, "margin after partial close", "50.4", p.Margin)
	// (61,500 - 60,000) x 0.41 x 0.01 = 6.15 gross; fee 61,500 x 0.41 x
	// 0.01 x 0.0005 = 0.126075.
	requireEqual(t, "realized PnL (R14)", "6.15", st.Fund.Figures.RealizedPnL)
	requireEqual(t, "fees (R14)", "0.375075", st.Fund.Figures.Fees)

	// Unfollow closes 0.42 at 61,500: gross 6.3, fee 0.12915. Equity
	// released: 1000 + 6.15 + 6.3 - 0.249 - 0.126075 - 0.12915.
	un, err := e.API.Unfollow(ctx, alice, trader)
	must(t, err)
	if un.Status != workflows.StatusEnded {
		t.Fatalf("unfollow status %s, want ended", un.Status)
	}
	requireEqual(t, "released (R19)", "1011.945775", un.Released)
	result := e.WaitClosed(ctx, alice, trader)
	requireEqual(t, "workflow result released", "1011.945775", result.Released)

	// PostgreSQL holds the same story.
	requireEqual(t, "available after release", "1511.945775", mustBalance(t, e, alice))
	requireEqual(t, "fund after release", "0", balance(t, e, ledger.Fund(res.RelationshipID)))
	requireEqual(t, "venue fees", "0.504225", balance(t, e, ledger.VenueFees))
	requireEqual(t, "venue pnl", "-12.45", balance(t, e, ledger.VenuePnL))
	orders, err := e.Store.Orders(ctx, res.RelationshipID)
	must(t, err)
	if len(orders) != 3 {
		t.Fatalf("orders: want 3 (open, copied close, unfollow close), got %d", len(orders))
	}
	for i, want := range []string{"0.83", "0.41", "0.42"} {
		requireEqual(t, "order size", want, orders[i].Size)
		if orders[i].Status != "filled" {
			t.Errorf("order %d status %s", i, orders[i].Status)
		}
	}
	var left int
	must(t, e.Pool.QueryRow(ctx, `select count(*) from positions where relationship_id = $1`, res.RelationshipID).Scan(&left))
	if left != 0 {
		t.Errorf("%d positions left open after unfollow", left)
	}
	rel, err := e.Store.Relationship(ctx, res.RelationshipID)
	must(t, err)
	if rel.Status != "ended" {
		t.Errorf("projection status %s, want ended", rel.Status)
	}
	audit, err := e.Store.Audit(ctx)
	must(t, err)
	if !audit.OK() {
		t.Errorf("audit: %v", audit.Differences)
	}

	// R22: unfollow again is not an error and moves nothing.
	again, err := e.API.Unfollow(ctx, alice, trader)
	must(t, err)
	requireEqual(t, "second unfollow reports the same release", "1011.945775", again.Released)
	requireEqual(t, "available unchanged", "1511.945775", mustBalance(t, e, alice))
}

func mustBalance(t *testing.T, e *testenv.Env, follower string) decimal.Decimal {
	t.Helper()
	b, err := e.Store.AvailableBalance(context.Background(), follower)
	must(t, err)
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
