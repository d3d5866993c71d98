package paper_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/venue"
)

// TestHandOver_R1: manual_close hands every position, with its margin, to
// the follower's own account; history records them as handed over with no
// close price; the rest of the fund stays for the release. Asking again
// returns the same positions and moves nothing.
func TestHandOver_R1(t *testing.T) {
	e := newEnv(t)
	e.fund("r1", "f-r1", "follow/r1", "1000")
	e.mark(btc, "60000")
	e.mark(eth, "3000")
	wantFilled(t, e.place(openReq("r1", "r1:btc", btc, copytrade.Long, "0.83", "5", copytrade.Isolated)))
	wantFilled(t, e.place(openReq("r1", "r1:eth", eth, copytrade.Short, "2", "10", copytrade.Cross)))
	e.mark(btc, "61000")
	wantFilled(t, e.place(closeReq("r1", "r1:btc-half", btc, copytrade.Long, "0.42")))
	// 1000 - 0.249 - 0.3 + 4.2 - 0.1281
	eq(t, "fund before", e.balance(ledger.Fund("r1")), d("1003.5229"))

	req := venue.HandOverRequest{Key: "handover/r1", RelationshipID: "r1", FollowerID: "f-r1"}
	got, err := e.v.HandOver(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := []copytrade.Position{
		{InstID: btc, Side: copytrade.Long, Size: d("0.41"), AvgPrice: d("60000"), Leverage: d("5"), MarginMode: copytrade.Isolated, Margin: d("49.2")},
		{InstID: eth, Side: copytrade.Short, Size: d("2"), AvgPrice: d("3000"), Leverage: d("10"), MarginMode: copytrade.Cross, Margin: d("60")},
	}
	samePositions(t, "handed over", got, want)

	if n := e.count(`select count(*) from positions where relationship_id = 'r1'`); n != 0 {
		t.Errorf("%d positions left on the venue", n)
	}
	left, err := e.v.Positions(e.ctx, "r1")
	if err != nil || len(left) != 0 {
		t.Errorf("Positions after hand over = %v, %v", left, err)
	}
	if n := e.count(`select count(*) from manual_positions where follower_id = 'f-r1' and from_relationship_id = 'r1'`); n != 2 {
		t.Errorf("%d manual positions, want 2", n)
	}
	var gross, fees, maxSize decimal.Decimal
	var closePrice decimal.NullDecimal
	if err := e.pool.QueryRow(e.ctx, `select gross_pnl, fees, max_size, avg_close_price from position_history
		where relationship_id = 'r1' and inst_id = $1 and outcome = 'handed_over'`, btc).Scan(&gross, &fees, &maxSize, &closePrice); err != nil {
		t.Fatal(err)
	}
	eq(t, "history gross", gross, d("4.2"))
	eq(t, "history fees", fees, d("0.3771"))
	eq(t, "history max size", maxSize, d("0.83"))
	if closePrice.Valid {
		t.Errorf("handed-over position has a close price %s", closePrice.Decimal)
	}
	if n := e.count(`select count(*) from position_history where relationship_id = 'r1' and outcome = 'handed_over'`); n != 2 {
		t.Errorf("%d handed_over history rows, want 2", n)
	}
	// The margins, 49.2 + 60, move to the follower's manual account.
	eq(t, "fund after", e.balance(ledger.Fund("r1")), d("894.3229"))
	eq(t, "manual account", e.balance(ledger.Manual("f-r1")), d("109.2"))
	var kind, follower string
	if err := e.pool.QueryRow(e.ctx, `select kind, follower_id from ledger_accounts where id = $1`, ledger.Manual("f-r1")).Scan(&kind, &follower); err != nil || kind != "manual" || follower != "f-r1" {
		t.Errorf("manual account: kind %q follower %q (%v)", kind, follower, err)
	}

	// Again, even under another request key: same list, nothing moves.
	for _, key := range []string{"handover/r1", "other"} {
		req.Key = key
		again, err := e.v.HandOver(e.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		samePositions(t, "replayed hand over", again, want)
	}
	eq(t, "fund after replay", e.balance(ledger.Fund("r1")), d("894.3229"))
	eq(t, "manual after replay", e.balance(ledger.Manual("f-r1")), d("109.2"))
	if n := e.count(`select count(*) from ledger_transactions where kind = 'handover'`); n != 1 {
		t.Errorf("%d handover moves, want 1", n)
	}

	// A relationship holding nothing hands over nothing.
	e.fund("r2", "f-r2", "follow/r2", "100")
	none, err := e.v.HandOver(e.ctx, venue.HandOverRequest{Key: "handover/r2", RelationshipID: "r2", FollowerID: "f-r2"})
	if err != nil || len(none) != 0 {
		t.Errorf("empty hand over = %v, %v", none, err)
	}
	eq(t, "r2 fund", e.balance(ledger.Fund("r2")), d("100"))
}

func samePositions(t *testing.T, what string, got, want []copytrade.Position) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d positions %+v, want %d", what, len(got), got, len(want))
	}
	for i := range want {
		samePosition(t, what, got[i], want[i])
	}
}
