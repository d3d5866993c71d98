package store_test

import (
	"testing"

	"smartcopy/copytrade"
	"smartcopy/ledger"
)

// A deposit creates the follower and credits the available balance once
// per key; bad input names its field and moves nothing (R25).
func TestDeposit_R25(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())

	got, err := f.st.Deposit(f.ctx, "alice", d("1500"), "k1")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "available after first deposit", got, d("1500"))
	got, err = f.st.Deposit(f.ctx, "alice", d("1500"), "k1")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "available after replay", got, d("1500"))
	if got, err = f.st.Deposit(f.ctx, "alice", d("200.5"), "k2"); err != nil {
		t.Fatal(err)
	}
	eq(t, "available after second deposit", got, d("1700.5"))
	eq(t, "world deposits", f.balance(ledger.WorldDeposits), d("-1700.5"))

	for _, tc := range []struct {
		name, follower, amount, key, field string
	}{
		{"zero amount", "alice", "0", "k3", "amount"},
		{"negative amount", "alice", "-5", "k3", "amount"},
		{"too many decimals", "alice", "1.123456789", "k3", "amount"},
		{"no follower", "", "10", "k3", "follower_id"},
		{"follower with space", "a b", "10", "k3", "follower_id"},
		{"no key", "alice", "10", "", "key"},
		{"key reused with another amount", "alice", "999", "k1", "key"},
		{"key reused by another follower", "bob", "1500", "k1", "key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.st.Deposit(f.ctx, tc.follower, d(tc.amount), tc.key)
			wantField(t, err, tc.field)
		})
	}
	available, err := f.st.AvailableBalance(f.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "available after refusals", available, d("1700.5"))
	if n := f.count(`select count(*) from ledger_transactions`); n != 2 {
		t.Errorf("ledger transactions = %d, want 2", n)
	}
	if n := f.count(`select count(*) from followers where id = 'bob'`); n != 0 {
		t.Errorf("refused deposit created follower bob")
	}
	none, err := f.st.AvailableBalance(f.ctx, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "available of a follower who never deposited", none, d("0"))
}
