// Package ledger posts money moves to the double-entry ledger in
// PostgreSQL. A move is a set of signed postings that sum to zero, stored
// under an idempotency key: posting the same key twice applies it once.
// Callers post inside their own database transaction, so a move commits or
// rolls back with the business change it belongs to.
package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
)

// Well-known accounts.
const (
	WorldDeposits = "world:deposits"
	VenueFees     = "venue:fees"
	VenuePnL      = "venue:pnl"
)

// Available is a follower's available (manual) balance account.
func Available(followerID string) string { return "follower:" + followerID + ":available" }

// Manual holds the margin of positions handed over to a follower's own account.
func Manual(followerID string) string { return "follower:" + followerID + ":manual" }

// Fund is one relationship's copy fund account.
func Fund(relationshipID string) string { return "fund:" + relationshipID }

// Posting is one signed amount on one account.
type Posting struct {
	Account string
	Amount  decimal.Decimal
}

// Move is one balanced ledger transaction.
type Move struct {
	Key            string
	Kind           string
	FollowerID     string
	RelationshipID string
	Memo           string
	Postings       []Posting
}

// Transfer is the common two-posting move: amount from one account to another.
func Transfer(key, kind, from, to string, amount decimal.Decimal) Move {
	return Move{Key: key, Kind: kind, Postings: []Posting{
		{Account: from, Amount: amount.Neg()},
		{Account: to, Amount: amount},
	}}
}

// ErrOverdraft is returned when a move would take an account below zero.
var ErrOverdraft = errors.New("ledger: account balance would go below zero")

// EnsureAccount creates an account if it does not exist.
func EnsureAccount(ctx context.Context, tx pgx.Tx, id, kind, followerID, relationshipID string) error {
	_, err := tx.Exec(ctx, `insert into ledger_accounts (id, kind, follower_id, relationship_id)
		values ($1, $2, nullif($3, ''), nullif($4, '')) on conflict (id) do nothing`, id, kind, followerID, relationshipID)
	if err != nil {
		return fmt.Errorf("ledger: ensure account %s: %w", id, err)
	}
	return nil
}

// Post applies m inside tx. It returns false, and changes nothing, when a
// move with the same key was posted before. Zero postings are dropped; a
// move whose postings do not sum to zero is refused.
func Post(ctx context.Context, tx pgx.Tx, m Move) (bool, error) {
	if m.Key == "" {
		return false, errors.New("ledger: move has no idempotency key")
	}
	sum := decimal.Zero
	var postings []Posting
	for _, p := range m.Postings {
		sum = sum.Add(p.Amount)
		if !p.Amount.IsZero() {
			postings = append(postings, p)
		}
	}
	if !sum.IsZero() {
		return false, fmt.Errorf("ledger: move %s is unbalanced by %s", m.Key, sum)
	}
	var txID int64
	err := tx.QueryRow(ctx, `insert into ledger_transactions (idempotency_key, kind, follower_id, relationship_id, memo)
		values ($1, $2, nullif($3, ''), nullif($4, ''), $5)
		on conflict (idempotency_key) do nothing returning id`,
		m.Key, m.Kind, m.FollowerID, m.RelationshipID, m.Memo).Scan(&txID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ledger: post %s: %w", m.Key, err)
	}
	for _, p := range postings {
		if _, err := tx.Exec(ctx, `insert into ledger_postings (transaction_id, account_id, amount) values ($1, $2, $3)`,
			txID, p.Account, p.Amount); err != nil {
			return false, fmt.Errorf("ledger: post %s to %s: %w", m.Key, p.Account, err)
		}
		// House accounts (balance_kept false) keep no stored balance, so
		// their rows are not locked by every move (schema 0007).
		if _, err := tx.Exec(ctx, `update ledger_accounts set balance = balance + $2 where id = $1 and balance_kept`, p.Account, p.Amount); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.ConstraintName == "ledger_accounts_no_overdraft" {
				return false, fmt.Errorf("%w: %s in move %s", ErrOverdraft, p.Account, m.Key)
			}
			return false, fmt.Errorf("ledger: update balance of %s: %w", p.Account, err)
		}
	}
	return true, nil
}

// Querier runs a query: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// BalanceOf reads any account's balance, derived from its postings for the
// house accounts that keep no stored balance. Missing accounts are zero.
func BalanceOf(ctx context.Context, q Querier, account string) (decimal.Decimal, error) {
	var b decimal.Decimal
	err := q.QueryRow(ctx, `select coalesce((select balance from ledger_balances where id = $1), 0)`, account).Scan(&b)
	if err != nil {
		return decimal.Zero, fmt.Errorf("ledger: balance of %s: %w", account, err)
	}
	return b, nil
}

// Balance reads a follower or fund account's balance inside tx, locking the
// row so that a check-then-move in the same transaction cannot race
// another. House accounts are never read this way: their stored balance
// is not kept.
func Balance(ctx context.Context, tx pgx.Tx, account string) (decimal.Decimal, error) {
	var b decimal.Decimal
	err := tx.QueryRow(ctx, `select balance from ledger_accounts where id = $1 for update`, account).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return decimal.Zero, nil
	}
	return b, err
}
