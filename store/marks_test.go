package store_test

import (
	"fmt"
	"testing"
	"time"

	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/venue"
)

func TestSetMarkPrice(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	wantField(t, f.st.SetMarkPrice(f.ctx, "DOGE-USDT-SWAP", d("1")), "inst_id")
	wantField(t, f.st.SetMarkPrice(f.ctx, "BTC-USDT-SWAP", d("0")), "price")
	wantField(t, f.st.SetMarkPrice(f.ctx, "BTC-USDT-SWAP", d("-1")), "price")
	for _, p := range []string{"50000", "50100.5"} {
		if err := f.st.SetMarkPrice(f.ctx, "BTC-USDT-SWAP", d(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.st.SetMarkPrice(f.ctx, "ETH-USDT-SWAP", d("3000")); err != nil {
		t.Fatal(err)
	}
	marks, err := f.st.MarkPrices(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) != 2 {
		t.Errorf("marks = %v", marks)
	}
	eq(t, "BTC mark", marks["BTC-USDT-SWAP"], d("50100.5"))
	eq(t, "ETH mark", marks["ETH-USDT-SWAP"], d("3000"))
}

// Net PnL = realized - fees + unrealized at mark; a relationship breaches
// when net <= -stop loss (R20). One query finds every breach after a price
// move (R21), and agrees with the domain's figures.
func TestStopLossBreaches_R20_R21(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	f.trader("t1", "10000")
	const btc, eth = "BTC-USDT-SWAP", "ETH-USDT-SWAP"
	for _, r := range []struct{ rel, follower, stop string }{
		{"ra", "fa", "50"}, {"rb", "fb", "50"}, {"rc", "fc", "50"}, {"rd", "fd", "0"}, {"re", "fe", "10"}, {"rf", "ff", "50"},
	} {
		f.deposit(r.follower, "1000")
		p := followParams(r.rel, r.follower, "t1", "1000")
		p.Request.StopLoss = d(r.stop)
		if _, err := f.st.Follow(f.ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// ra: realized -40 and fees 10: net -50, exactly at its stop loss.
	f.fill(fill{rel: "ra", follower: "fa", trader: "t1", clientID: "a1", inst: btc, side: copytrade.Long, action: venue.Open,
		size: "1", price: "50000", fee: "10", margin: "100"})
	f.fill(fill{rel: "ra", follower: "fa", trader: "t1", clientID: "a2", inst: btc, side: copytrade.Long, action: venue.Close,
		size: "1", price: "46000", fee: "0", margin: "100", gross: "-40"})
	// rb: long 1 BTC at 50,000, nothing realized.
	f.position("rb", btc, copytrade.Long, "1", "50000", "100")
	// rc: short 10 ETH at 3,000 (ctVal 0.1), fee 9.99.
	f.fill(fill{rel: "rc", follower: "fc", trader: "t1", clientID: "c1", inst: eth, side: copytrade.Short, action: venue.Open,
		size: "10", price: "3000", fee: "9.99", margin: "300"})
	f.position("rc", eth, copytrade.Short, "10", "3000", "300")
	// rd: a large loss but no stop loss; re: a stop loss but already stopping.
	f.fill(fill{rel: "rd", follower: "fd", trader: "t1", clientID: "d1", inst: btc, side: copytrade.Long, action: venue.Close,
		size: "1", price: "1", fee: "0", margin: "0", gross: "-500"})
	f.fill(fill{rel: "re", follower: "fe", trader: "t1", clientID: "e1", inst: btc, side: copytrade.Long, action: venue.Close,
		size: "1", price: "1", fee: "0", margin: "0", gross: "-100"})
	if err := f.st.SetStatus(f.ctx, "re", store.StatusStopping, "unfollow"); err != nil {
		t.Fatal(err)
	}
	// rf: short BTC, which gains when BTC falls.
	f.position("rf", btc, copytrade.Short, "2", "50000", "200")

	for _, step := range []struct {
		btc, eth string
		want     string
	}{
		{"45000", "3040", "[ra:-50 rb:-50]"},
		{"45001", "3041", "[ra:-50 rc:-50.99]"},
		{"56000", "2000", "[ra:-50 rf:-120]"},
	} {
		if err := f.st.SetMarkPrice(f.ctx, btc, d(step.btc)); err != nil {
			t.Fatal(err)
		}
		if err := f.st.SetMarkPrice(f.ctx, eth, d(step.eth)); err != nil {
			t.Fatal(err)
		}
		breaches, err := f.st.StopLossBreaches(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range breaches {
			got = append(got, b.RelationshipID+":"+b.NetPnL.String())
			fig, _, err := f.st.Figures(f.ctx, b.RelationshipID)
			if err != nil {
				t.Fatal(err)
			}
			if !fig.NetPnL.Equal(b.NetPnL) || !copytrade.StopLossBreached(fig.NetPnL, b.StopLoss) {
				t.Errorf("%s: scan says net %s, domain says %s", b.RelationshipID, b.NetPnL, fig.NetPnL)
			}
			if b.WorkflowID != "copy/"+b.FollowerID+"/t1" || b.TraderID != "t1" || !b.StopLoss.Equal(d("50")) {
				t.Errorf("breach = %+v", b)
			}
		}
		if fmt.Sprint(got) != step.want {
			t.Errorf("BTC %s ETH %s: breaches %v, want %s", step.btc, step.eth, got, step.want)
		}
	}
}

// The scan is one query over all relationships, so a price move reaches
// thousands of them at once (R21).
func TestStopLossBreachesAtScale_R21(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	const n = 3000
	f.exec(`insert into followers (id) select 'f' || g from generate_series(1, $1) g`, n)
	f.exec(`insert into traders (id) select 't' || g from generate_series(1, 30) g`)
	f.exec(`insert into relationships (id, workflow_id, follower_id, trader_id, status, investment, stop_loss, stop_mode, trader_seq_at_follow)
		select 'r' || g, 'copy/f' || g || '/t' || (g % 30 + 1), 'f' || g, 't' || (g % 30 + 1), 'active', 1000, 100, 'market_close', 0
		from generate_series(1, $1) g`, n)
	// Ten closes each: every tenth relationship lost 20 + 1 fee a close
	// (-210), the others made 5 - 1 (+40).
	f.exec(`insert into orders (client_order_id, relationship_id, follower_id, trader_id, trader_event_id, inst_id, side, action,
			status, size, price, fee, gross_pnl)
		select 'o' || g || '-' || k, 'r' || g, 'f' || g, 't' || (g % 30 + 1), 'e' || k, 'BTC-USDT-SWAP', 'long', 'close',
			'filled', 1, 50000, 1, case when g % 10 = 0 then -20 else 5 end
		from generate_series(1, $1) g, generate_series(1, 10) k`, n)
	f.exec(`insert into positions (relationship_id, inst_id, side, size, avg_price, leverage, margin_mode, margin)
		select 'r' || g, 'BTC-USDT-SWAP', 'long', 1, 50000, 5, 'cross', 100 from generate_series(1, $1) g`, n)
	f.exec(`analyze`)

	for _, step := range []struct {
		mark string
		want int
	}{
		{"49000", n / 10}, // unrealized -10: -220 breaches, +30 does not
		{"40000", n / 10}, // -100: +40 - 100 = -60 still above -100
		{"30000", n},      // -200: everyone at or below -100
	} {
		if err := f.st.SetMarkPrice(f.ctx, "BTC-USDT-SWAP", d(step.mark)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		breaches, err := f.st.StopLossBreaches(f.ctx)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if len(breaches) != step.want {
			t.Errorf("mark %s: %d breaches, want %d", step.mark, len(breaches), step.want)
		}
		t.Logf("mark %s: %d relationships scanned in %s", step.mark, n, took)
		if took > 2*time.Second {
			t.Errorf("scan of %d relationships took %s", n, took)
		}
	}
}
