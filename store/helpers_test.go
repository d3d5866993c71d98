package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/internal/pgtest"
	"smartcopy/ledger"
	"smartcopy/store"
	"smartcopy/venue"
)

// fixture is one test's database and store.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	st   *store.Store
}

func newFixture(t *testing.T, rules copytrade.Rules) *fixture {
	t.Helper()
	_, pool := pgtest.NewDatabase(t)
	return &fixture{t: t, ctx: context.Background(), pool: pool, st: store.New(pool, rules)}
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func (f *fixture) deposit(followerID, amount string) {
	f.t.Helper()
	if _, err := f.st.Deposit(f.ctx, followerID, d(amount), "seed-"+followerID+"-"+amount); err != nil {
		f.t.Fatalf("deposit %s to %s: %v", amount, followerID, err)
	}
}

func (f *fixture) trader(id, equity string) {
	f.t.Helper()
	if err := f.st.RegisterTrader(f.ctx, id, d(equity)); err != nil {
		f.t.Fatalf("register trader %s: %v", id, err)
	}
}

func followParams(rel, follower, trader, investment string) store.FollowParams {
	return store.FollowParams{
		RelationshipID: rel,
		WorkflowID:     "copy/" + follower + "/" + trader,
		Request: copytrade.FollowRequest{
			FollowerID: follower,
			TraderID:   trader,
			Investment: d(investment),
		},
	}
}

func (f *fixture) follow(rel, follower, trader, investment string) store.FollowResult {
	f.t.Helper()
	res, err := f.st.Follow(f.ctx, followParams(rel, follower, trader, investment))
	if err != nil {
		f.t.Fatalf("follow %s: %v", rel, err)
	}
	return res
}

// balance is a ledger account's stored balance, zero if it does not exist.
func (f *fixture) balance(account string) decimal.Decimal {
	f.t.Helper()
	var b decimal.Decimal
	err := f.pool.QueryRow(f.ctx, `select balance from ledger_balances where id = $1`, account).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return decimal.Zero
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// fill records a filled order and posts its ledger moves the way the paper
// venue does: an open pays its fee from the fund; a close takes gross PnL
// from the venue and pays its fee.
type fill struct {
	rel, follower, trader, clientID, inst string
	side                                  copytrade.Side
	action                                venue.Action
	size, price, fee, margin, gross       string
}

func (f *fixture) fill(o fill) {
	f.t.Helper()
	if o.gross == "" {
		o.gross = "0"
	}
	err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(f.ctx, `insert into orders (client_order_id, relationship_id, follower_id, trader_id, trader_event_id,
				inst_id, side, action, status, size, price, fee, margin, gross_pnl, leverage, margin_mode)
			values ($1, $2, $3, $4, 'ev', $5, $6, $7, 'filled', $8, $9, $10, $11, $12, 5, 'cross')`,
			o.clientID, o.rel, o.follower, o.trader, o.inst, string(o.side), string(o.action),
			d(o.size), d(o.price), d(o.fee), d(o.margin), d(o.gross)); err != nil {
			return err
		}
		fund := ledger.Fund(o.rel)
		m := ledger.Move{Key: "order/" + o.clientID, FollowerID: o.follower, RelationshipID: o.rel}
		if o.action == venue.Open {
			m.Kind = "open_fee"
			m.Postings = []ledger.Posting{{Account: fund, Amount: d(o.fee).Neg()}, {Account: ledger.VenueFees, Amount: d(o.fee)}}
		} else {
			m.Kind = "close"
			m.Postings = []ledger.Posting{
				{Account: ledger.VenuePnL, Amount: d(o.gross).Neg()},
				{Account: fund, Amount: d(o.gross).Sub(d(o.fee))},
				{Account: ledger.VenueFees, Amount: d(o.fee)},
			}
		}
		_, err := ledger.Post(f.ctx, tx, m)
		return err
	})
	if err != nil {
		f.t.Fatalf("fill %s: %v", o.clientID, err)
	}
}

// position sets a relationship's venue position by hand.
func (f *fixture) position(rel, inst string, side copytrade.Side, size, avg, margin string) {
	f.t.Helper()
	f.exec(`insert into positions (relationship_id, inst_id, side, size, avg_price, leverage, margin_mode, margin, max_size)
		values ($1, $2, $3, $4, $5, 5, 'cross', $6, $4)
		on conflict (relationship_id, inst_id, side) do update set size = excluded.size, avg_price = excluded.avg_price, margin = excluded.margin`,
		rel, inst, string(side), d(size), d(avg), d(margin))
}

// wantField fails unless err is a *copytrade.FieldError naming field.
func wantField(t *testing.T, err error, field string) *copytrade.FieldError {
	t.Helper()
	var fe *copytrade.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want a FieldError on %q, got %v", field, err)
	}
	if fe.Field != field {
		t.Fatalf("want a FieldError on %q, got %q: %s", field, fe.Field, fe.Reason)
	}
	return fe
}

func eq(t *testing.T, what string, got, want decimal.Decimal) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func wantReason(t *testing.T, fe *copytrade.FieldError, contains string) {
	t.Helper()
	if !strings.Contains(fe.Reason, contains) {
		t.Errorf("reason %q does not say %q", fe.Reason, contains)
	}
}
