package store

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/ledger"
)

// Deposit credits amount to a follower's available balance from the world,
// creating the follower and its account on first use, and returns the
// balance after. key makes it idempotent: the same key deposits once, and a
// replay answers with the current balance.
func (s *Store) Deposit(ctx context.Context, followerID string, amount decimal.Decimal, key string) (decimal.Decimal, error) {
	if fe := copytrade.ValidateID("follower_id", followerID); fe != nil {
		return decimal.Zero, fe
	}
	if fe := copytrade.ValidateAmount("amount", amount); fe != nil {
		return decimal.Zero, fe
	}
	if key == "" {
		return decimal.Zero, fieldErr("key", "is required: a deposit without an idempotency key could be applied twice")
	}
	var available decimal.Decimal
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := ensureFollower(ctx, tx, followerID); err != nil {
			return err
		}
		move := ledger.Transfer(depositKey(key), "deposit", ledger.WorldDeposits, ledger.Available(followerID), amount)
		move.FollowerID = followerID
		fresh, err := ledger.Post(ctx, tx, move)
		if err != nil {
			return err
		}
		if !fresh {
			if err := checkDepositReplay(ctx, tx, key, followerID, amount); err != nil {
				return err
			}
		}
		available, err = ledger.Balance(ctx, tx, ledger.Available(followerID))
		return err
	})
	return available, fail(err, "deposit %s for %s", amount, followerID)
}

func depositKey(key string) string { return "deposit/" + key }

// checkDepositReplay refuses a key reused for another follower or amount:
// answering "done" to it would hide a deposit that never happened.
func checkDepositReplay(ctx context.Context, tx pgx.Tx, key, followerID string, amount decimal.Decimal) error {
	var kind string
	var credited decimal.Decimal
	err := tx.QueryRow(ctx, `select t.kind, coalesce(sum(p.amount) filter (where p.account_id = $2), 0)
		from ledger_transactions t left join ledger_postings p on p.transaction_id = t.id
		where t.idempotency_key = $1 group by t.id`, depositKey(key), ledger.Available(followerID)).Scan(&kind, &credited)
	if err != nil {
		return err
	}
	if kind != "deposit" || !credited.Equal(amount) {
		return fieldErr("key", "%q was already used for a different deposit", key)
	}
	return nil
}

// ensureFollower creates the follower row and its available account.
func ensureFollower(ctx context.Context, tx pgx.Tx, followerID string) error {
	if _, err := tx.Exec(ctx, `insert into followers (id) values ($1) on conflict (id) do nothing`, followerID); err != nil {
		return err
	}
	return ledger.EnsureAccount(ctx, tx, ledger.Available(followerID), "available", followerID, "")
}

// AvailableBalance is a follower's available balance; a follower who never
// deposited has zero.
func (s *Store) AvailableBalance(ctx context.Context, followerID string) (decimal.Decimal, error) {
	b, err := accountBalance(ctx, s.pool, ledger.Available(followerID))
	return b, fail(err, "available balance of %s", followerID)
}

// accountBalance reads a balance without locking; a missing account is zero.
func accountBalance(ctx context.Context, q querier, account string) (decimal.Decimal, error) {
	var b decimal.Decimal
	err := q.QueryRow(ctx, `select balance from ledger_accounts where id = $1`, account).Scan(&b)
	if noRows(err) {
		return decimal.Zero, nil
	}
	return b, err
}

// ValidateEmail checks an address notifications may be emailed to; empty
// (no emails) is valid.
func ValidateEmail(email string) *copytrade.FieldError {
	email = strings.TrimSpace(email)
	if email != "" && (!strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n")) {
		return fieldErr("email", "%q is not an email address", email)
	}
	return nil
}

// SetFollowerEmail sets the address notifications are emailed to, creating
// the follower if needed. An empty email stops emails.
func (s *Store) SetFollowerEmail(ctx context.Context, followerID, email string) error {
	if fe := copytrade.ValidateID("follower_id", followerID); fe != nil {
		return fe
	}
	email = strings.TrimSpace(email)
	if fe := ValidateEmail(email); fe != nil {
		return fe
	}
	_, err := s.pool.Exec(ctx, `insert into followers (id, email) values ($1, $2)
		on conflict (id) do update set email = excluded.email`, followerID, email)
	return fail(err, "set email of %s", followerID)
}
