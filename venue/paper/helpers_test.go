package paper_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
	"smartcopy/internal/pgtest"
	"smartcopy/ledger"
	"smartcopy/venue"
	"smartcopy/venue/paper"
)

const (
	btc = "BTC-USDT-SWAP"
	eth = "ETH-USDT-SWAP"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// env is one test's database and venue.
type env struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	v    *paper.Venue
}

func newEnv(t *testing.T) *env {
	t.Helper()
	_, pool := pgtest.NewDatabase(t)
	e := &env{t: t, ctx: context.Background(), pool: pool, v: paper.New(pool)}
	t.Cleanup(e.checkLedger)
	return e
}

// fund puts amount into a relationship's copy fund from the world, as a
// follow does (the store's job in production).
func (e *env) fund(rel, follower, key string, amount string) {
	e.t.Helper()
	err := pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		if err := ledger.EnsureAccount(e.ctx, tx, ledger.Fund(rel), "fund", follower, rel); err != nil {
			return err
		}
		_, err := ledger.Post(e.ctx, tx, ledger.Transfer(key, "deposit", ledger.WorldDeposits, ledger.Fund(rel), d(amount)))
		return err
	})
	if err != nil {
		e.t.Fatalf("fund %s with %s: %v", rel, amount, err)
	}
}

func (e *env) mark(inst, price string) {
	e.t.Helper()
	if _, err := e.pool.Exec(e.ctx, `insert into mark_prices (inst_id, price) values ($1, $2)
		on conflict (inst_id) do update set price = excluded.price, updated_at = now()`, inst, d(price)); err != nil {
		e.t.Fatalf("mark %s at %s: %v", inst, price, err)
	}
}

func (e *env) balance(account string) decimal.Decimal {
	e.t.Helper()
	var b decimal.Decimal
	err := e.pool.QueryRow(e.ctx, `select coalesce((select balance from ledger_balances where id = $1), 0)`, account).Scan(&b)
	if err != nil {
		e.t.Fatalf("balance of %s: %v", account, err)
	}
	return b
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// checkLedger asserts the ledger's invariants after every test: the
// balances sum to zero, each equals the sum of its postings, and no
// account that may not go negative did.
func (e *env) checkLedger() {
	var total decimal.Decimal
	var mismatched, negative int
	err := e.pool.QueryRow(e.ctx, `select coalesce(sum(balance), 0),
			count(*) filter (where balance <> coalesce((select sum(amount) from ledger_postings p where p.account_id = a.id), 0)),
			count(*) filter (where balance < 0 and not allow_negative)
		from ledger_balances a`).Scan(&total, &mismatched, &negative)
	if err != nil {
		e.t.Errorf("check ledger: %v", err)
		return
	}
	if !total.IsZero() || mismatched != 0 || negative != 0 {
		e.t.Errorf("ledger broken: balances sum to %s, %d accounts differ from their postings, %d overdrawn", total, mismatched, negative)
	}
}

func (e *env) place(req venue.OrderRequest) venue.Fill {
	e.t.Helper()
	fill, err := e.v.PlaceOrder(e.ctx, req)
	if err != nil {
		e.t.Fatalf("PlaceOrder(%s): %v", req.ClientOrderID, err)
	}
	return fill
}

func openReq(rel, coid, inst string, side copytrade.Side, size, lev string, mode copytrade.MarginMode) venue.OrderRequest {
	return venue.OrderRequest{ClientOrderID: coid, RelationshipID: rel, FollowerID: "f-" + rel, TraderID: "t1",
		TraderEventID: "ev-" + coid, InstID: inst, Side: side, Action: venue.Open, Size: d(size), Leverage: d(lev),
		MarginMode: mode}
}

func closeReq(rel, coid, inst string, side copytrade.Side, size string) venue.OrderRequest {
	return venue.OrderRequest{ClientOrderID: coid, RelationshipID: rel, FollowerID: "f-" + rel, TraderID: "t1",
		TraderEventID: "ev-" + coid, InstID: inst, Side: side, Action: venue.Close, Size: d(size)}
}

func eq(t *testing.T, what string, got, want decimal.Decimal) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func wantRejected(t *testing.T, fill venue.Fill, reason string) {
	t.Helper()
	if fill.Status != venue.Rejected || fill.Reason != reason {
		t.Fatalf("fill %s: status %s reason %q (%s), want rejected %q", fill.ClientOrderID, fill.Status, fill.Reason, fill.Detail, reason)
	}
	if fill.Detail == "" {
		t.Errorf("rejection %s has no detail sentence", reason)
	}
}

func wantFilled(t *testing.T, fill venue.Fill) {
	t.Helper()
	if fill.Status != venue.Filled {
		t.Fatalf("fill %s: status %s reason %q (%s), want filled", fill.ClientOrderID, fill.Status, fill.Reason, fill.Detail)
	}
}

// orderRow reads what the follower sees of an order (R26).
type orderRow struct {
	Status, Reason, Detail, MarginMode, TraderID, TraderEventID, Action string
	Size, Price, Fee, Margin, GrossPnL, Leverage                        decimal.Decimal
	LimitPrice                                                          decimal.NullDecimal
	Sizing                                                              []byte
}

func (e *env) order(coid string) orderRow {
	e.t.Helper()
	var o orderRow
	err := e.pool.QueryRow(e.ctx, `select status, reason, detail, margin_mode, trader_id, trader_event_id, action,
			size, price, fee, margin, gross_pnl, leverage, limit_price, sizing
		from orders where client_order_id = $1`, coid).Scan(&o.Status, &o.Reason, &o.Detail, &o.MarginMode,
		&o.TraderID, &o.TraderEventID, &o.Action, &o.Size, &o.Price, &o.Fee, &o.Margin, &o.GrossPnL, &o.Leverage,
		&o.LimitPrice, &o.Sizing)
	if err != nil {
		e.t.Fatalf("order %s: %v", coid, err)
	}
	return o
}

// positionRow reads a positions row with its accumulated figures.
type positionRow struct {
	Size, AvgPrice, Leverage, Margin, MaxSize, ClosedSize, CloseValue, GrossPnL, Fees decimal.Decimal
	MarginMode                                                                        string
}

func (e *env) position(rel, inst string, side copytrade.Side) (positionRow, bool) {
	e.t.Helper()
	var p positionRow
	err := e.pool.QueryRow(e.ctx, `select size, avg_price, leverage, margin, max_size, closed_size, close_value,
			gross_pnl, fees, margin_mode
		from positions where relationship_id = $1 and inst_id = $2 and side = $3`, rel, inst, string(side)).Scan(
		&p.Size, &p.AvgPrice, &p.Leverage, &p.Margin, &p.MaxSize, &p.ClosedSize, &p.CloseValue, &p.GrossPnL, &p.Fees,
		&p.MarginMode)
	if err == pgx.ErrNoRows {
		return p, false
	}
	if err != nil {
		e.t.Fatalf("position: %v", err)
	}
	return p, true
}
