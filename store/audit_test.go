package store_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/store"
	"smartcopy/venue"
)

// The audit recomputes SPEC §4's invariant from the rows: it passes on
// money moved the way the store and the venue move it, and names the exact
// rows when something is off.
func TestAudit(t *testing.T) {
	t.Parallel()
	// The audit spells these account ids in SQL.
	for got, want := range map[string]string{
		ledger.Available("x"): "follower:x:available",
		ledger.Manual("x"):    "follower:x:manual",
		ledger.Fund("r"):      "fund:r",
	} {
		if got != want {
			t.Fatalf("ledger names account %q, the audit expects %q", got, want)
		}
	}

	f := newFixture(t, copytrade.DefaultRules())
	f.deposit("alice", "2000")
	f.deposit("bob", "700")
	f.trader("t1", "10000")
	f.follow("r1", "alice", "t1", "1000")
	f.follow("r2", "bob", "t1", "500")
	if _, err := f.st.ChangeInvestment(f.ctx, "r1", "k1", d("300")); err != nil {
		t.Fatal(err)
	}
	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "o1", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Open, size: "2", price: "50000", fee: "0.5", margin: "200"})
	f.fill(fill{rel: "r1", follower: "alice", trader: "t1", clientID: "o2", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Close, size: "1", price: "48000", fee: "0.24", margin: "100", gross: "-20"})
	f.fill(fill{rel: "r2", follower: "bob", trader: "t1", clientID: "o3", inst: "BTC-USDT-SWAP", side: copytrade.Long,
		action: venue.Open, size: "1", price: "50000", fee: "0.25", margin: "100"})
	// bob stops with manual_close: his position's margin goes to his own
	// account before the rest of the fund is released.
	err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		if err := ledger.EnsureAccount(f.ctx, tx, ledger.Manual("bob"), "manual", "bob", ""); err != nil {
			return err
		}
		m := ledger.Transfer("handover/r2", "handover", ledger.Fund("r2"), ledger.Manual("bob"), d("100"))
		m.FollowerID, m.RelationshipID = "bob", "r2"
		_, err := ledger.Post(f.ctx, tx, m)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetStatus(f.ctx, "r2", store.StatusStopping, "unfollow"); err != nil {
		t.Fatal(err)
	}

	report := audit(t, f)
	if !report.OK() {
		t.Fatalf("audit of a consistent ledger: %q", report.Differences)
	}
	names := map[string]store.AuditCheck{}
	for _, c := range report.Checks {
		names[c.Name] = c
		if c.Compared == "" {
			t.Errorf("check %s does not say what it compared", c.Name)
		}
	}
	// Account balances: the five accounts that keep a stored balance; the
	// three house accounts derive theirs from their postings.
	for name, rows := range map[string]int{
		"transactions balance": 9, "account balances": 5, "follower money": 2, "fund equity": 2, "venue fees": 1, "venue pnl": 1,
	} {
		if names[name].Rows != rows {
			t.Errorf("check %q compared %d rows, want %d", name, names[name].Rows, rows)
		}
	}

	if _, _, err := f.st.Release(f.ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if report := audit(t, f); !report.OK() {
		t.Fatalf("audit after release: %q", report.Differences)
	}

	// A balance edited in place.
	f.exec(`update ledger_accounts set balance = balance + 1 where id = 'fund:r1'`)
	report = audit(t, f)
	wantDiff(t, report, "account balances: account fund:r1 has balance 1280.26 but its postings sum to 1279.26")
	wantDiff(t, report, "follower money: follower alice: available 700 + funds 1280.26 + manual 0 = 1980.26, but deposits 2000 + realized -20 - fees 0.74 = 1979.26")
	wantDiff(t, report, "fund equity: relationship r1: fund balance 1280.26, but investment 1300 + realized -20 - fees 0.74 - handed over 0 = 1279.26")
	if len(report.Differences) != 3 {
		t.Errorf("differences = %q", report.Differences)
	}
	f.exec(`update ledger_accounts set balance = balance - 1 where id = 'fund:r1'`)

	// Running totals that drifted from the orders they sum.
	f.exec(`update fund_totals set fees = fees + 0.01 where relationship_id = 'r1'`)
	report = audit(t, f)
	wantDiff(t, report, "fund totals: relationship r1: totals realized")
	f.exec(`update fund_totals set fees = fees - 0.01 where relationship_id = 'r1'`)

	// A fee recorded on an order but never charged.
	f.exec(`insert into orders (client_order_id, relationship_id, follower_id, trader_id, trader_event_id, inst_id, side, action, status, fee)
		values ('o4', 'r1', 'alice', 't1', 'e4', 'BTC-USDT-SWAP', 'long', 'open', 'filled', 0.3)`)
	report = audit(t, f)
	wantDiff(t, report, "venue fees: account venue:fees holds 0.99 but filled orders charged 1.29")
	wantDiff(t, report, "fund equity: relationship r1: fund balance 1279.26")
	f.exec(`delete from orders where client_order_id = 'o4'`)

	// An unbalanced transaction, slipped past the trigger.
	err = pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(f.ctx, `set local session_replication_role = replica`); err != nil {
			return err
		}
		if _, err := tx.Exec(f.ctx, `insert into ledger_transactions (id, idempotency_key, kind) values (1000, 'bogus', 'gift')`); err != nil {
			return err
		}
		if _, err := tx.Exec(f.ctx, `insert into ledger_postings (transaction_id, account_id, amount) values (1000, 'follower:bob:available', 5)`); err != nil {
			return err
		}
		_, err := tx.Exec(f.ctx, `update ledger_accounts set balance = balance + 5 where id = 'follower:bob:available'`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	report = audit(t, f)
	wantDiff(t, report, "transactions balance: transaction 1000 (gift, key bogus) sums to 5")
	wantDiff(t, report, "follower money: follower bob:")

	// An account that may not go negative, negative.
	f.exec(`alter table ledger_accounts drop constraint ledger_accounts_no_overdraft`)
	f.exec(`insert into ledger_accounts (id, kind, balance) values ('follower:carol:available', 'available', -2)`)
	report = audit(t, f)
	wantDiff(t, report, "no overdraft: account follower:carol:available (available) is at -2")
}

func audit(t *testing.T, f *fixture) store.AuditReport {
	t.Helper()
	report, err := f.st.Audit(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return report
}

func wantDiff(t *testing.T, r store.AuditReport, prefix string) {
	t.Helper()
	for _, d := range r.Differences {
		if strings.HasPrefix(d, prefix) {
			return
		}
	}
	t.Errorf("audit does not report %q; it reports %q", prefix, r.Differences)
}
