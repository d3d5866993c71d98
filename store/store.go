// Package store is smartcopy's PostgreSQL access for everything but the
// venue: follower balances, lead traders and their books, the projection of
// copy relationships, order and investment history, the notification
// outbox, mark prices, the stop-loss scan and the ledger audit.
//
// Every method that writes more than one row does so in one database
// transaction, and every money move goes through package ledger under an
// idempotency key, so a retried activity never moves money twice. Refused
// input comes back as a *copytrade.FieldError naming the field (R25) and
// changes nothing.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"smartcopy/copytrade"
)

// Store reads and writes smartcopy's tables. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	rules copytrade.Rules
}

// New returns a Store on pool that applies rules (minimum investment and
// follow limits). A limit of zero or less means no limit.
func New(pool *pgxpool.Pool, rules copytrade.Rules) *Store {
	return &Store{pool: pool, rules: rules}
}

// Pool is the pool the store uses, for callers that share it (the venue).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Rules are the rules the store applies.
func (s *Store) Rules() copytrade.Rules { return s.rules }

// Sentinel errors for look-ups of things that do not exist.
var (
	ErrUnknownTrader       = errors.New("unknown trader")
	ErrUnknownRelationship = errors.New("unknown relationship")
	ErrUnknownNotification = errors.New("unknown notification")
	// ErrPositionsOpen is returned by Release while the relationship still
	// holds positions: releasing then would hand out margin the positions
	// still use (R19).
	ErrPositionsOpen = errors.New("relationship still holds positions")
)

// querier is what both a pool and a transaction offer, so read helpers can
// run inside a write transaction or on their own.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTx runs fn in one transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// fail wraps err with what the store was doing, except that a FieldError is
// returned as it is: it is an answer for the user, and callers show its
// field and reason without the store's context.
func fail(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var fe *copytrade.FieldError
	if errors.As(err, &fe) {
		return fe
	}
	return fmt.Errorf("store: "+format+": %w", append(args, err)...)
}

// fieldErr builds a FieldError with a formatted reason.
func fieldErr(field, format string, args ...any) *copytrade.FieldError {
	return &copytrade.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// noRows reports whether err is pgx's "no rows".
func noRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
