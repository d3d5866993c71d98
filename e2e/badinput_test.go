package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/workflows"
)

// snapshot is everything a refused request must leave as it was: every
// ledger balance and transaction, the orders, syncs and trader events, the
// relationships with their settings, investment changes, mark prices and
// notifications, and the live relationship's workflow state.
func snapshot(t *testing.T, e *testenv.Env, follower, trader string) string {
	t.Helper()
	ctx := context.Background()
	var db string
	must(t, e.Pool.QueryRow(ctx, `select concat_ws(E'\n',
		(select string_agg(id || '=' || balance, ', ' order by id) from ledger_accounts),
		(select 'transactions ' || count(*) from ledger_transactions),
		(select 'orders ' || count(*) from orders),
		(select 'syncs ' || count(*) from risk_syncs),
		(select 'events ' || count(*) from trader_events),
		(select string_agg(id || ' ' || status || ' ' || investment || ' ' || stop_loss || ' ' || stop_mode, ', ' order by id) from relationships),
		(select 'investment changes ' || count(*) from investment_changes),
		(select string_agg(inst_id || '=' || price, ', ' order by inst_id) from mark_prices),
		(select 'notifications ' || count(*) from notifications))`).Scan(&db))
	v, err := e.API.State(ctx, follower, trader)
	must(t, err)
	st := v.State
	return db + fmt.Sprintf("\nworkflow %s, investment %s, stop loss %s %s, equity %s, %d investment changes",
		st.Status, st.Settings.Investment, st.Settings.StopLoss, st.Settings.StopMode, st.Fund.Figures.Equity, st.InvestmentChanges)
}

// R18, R25 through the API: every follow, investment, stop-loss and
// unfollow request with a bad value (negative, zero, too many decimals,
// huge, more than there is, an unknown trader, mode or relationship) is
// refused with the field that was wrong, and changes nothing anywhere:
// not the ledger, not the projection, not the workflow's state.
func TestBadRequestsChangeNothing_R18_R25(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, alice, bob, carol := e.ID("trader"), e.ID("alice"), e.ID("bob"), e.ID("carol")
	setup(t, e, trader, map[string]string{alice: "2000", bob: "1000", carol: "500"})
	_, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: alice, TraderID: trader, Investment: d("1000")})
	must(t, err)
	publish(t, e, openEv(e, trader, "open", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "1000", "60000", "8.33"), alice)
	// carol followed and left: her relationship has ended.
	_, err = e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: carol, TraderID: trader, Investment: d("100")})
	must(t, err)
	_, err = e.API.Unfollow(ctx, carol, trader)
	must(t, err)
	e.WaitClosed(ctx, carol, trader)

	follow := func(f, tr, investment, stopLoss string, mode copytrade.StopMode) func() error {
		return func() error {
			req := copytrade.FollowRequest{FollowerID: f, TraderID: tr, Investment: d(investment), StopMode: mode}
			if stopLoss != "" {
				req.StopLoss = d(stopLoss)
			}
			_, err := e.API.Follow(ctx, req)
			return err
		}
	}
	invest := func(f, direction, amount string) func() error {
		return func() error {
			_, err := e.API.ChangeInvestment(ctx, f, trader, workflows.InvestmentRequest{Direction: direction, Amount: d(amount)})
			return err
		}
	}
	stopLoss := func(f, amount string, mode copytrade.StopMode) func() error {
		return func() error {
			_, err := e.API.SetStopLoss(ctx, f, trader, workflows.StopLossRequest{StopLoss: d(amount), StopMode: mode})
			return err
		}
	}
	for _, tc := range []struct {
		name, field string
		call        func() error
	}{
		{"follow: negative investment", "investment", follow(bob, trader, "-100", "", "")},
		{"follow: zero investment", "investment", follow(bob, trader, "0", "", "")},
		{"follow: below the minimum", "investment", follow(bob, trader, "99.99", "", "")},
		{"follow: more decimals than money has", "investment", follow(bob, trader, "100.123456789", "", "")},
		{"follow: huge investment", "investment", follow(bob, trader, "1e400", "", "")},
		{"follow: more than the available balance", "investment", follow(bob, trader, "5000", "", "")},
		{"follow: unknown trader", "trader_id", follow(bob, e.ID("nobody"), "100", "", "")},
		{"follow: yourself", "trader_id", follow(bob, bob, "100", "", "")},
		{"follow: bad follower id", "follower_id", follow("a/b", trader, "100", "", "")},
		{"follow: unknown stop mode", "stop_mode", follow(bob, trader, "100", "", "sideways")},
		{"follow: negative stop loss", "stop_loss", follow(bob, trader, "100", "-1", "")},
		{"follow: huge stop loss", "stop_loss", follow(bob, trader, "100", "1e400", "")},
		{"follow: a second time", "trader_id", follow(alice, trader, "100", "", "")},

		{"raise: negative", "amount", invest(alice, workflows.Raise, "-5")},
		{"raise: zero", "amount", invest(alice, workflows.Raise, "0")},
		{"raise: more decimals than money has", "amount", invest(alice, workflows.Raise, "0.123456789")},
		{"raise: huge", "amount", invest(alice, workflows.Raise, "1e400")},
		{"raise: more than the available balance", "amount", invest(alice, workflows.Raise, "1000000")},
		{"lower: below the minimum", "amount", invest(alice, workflows.Lower, "950")},
		{"lower: more than the fund has available", "amount", invest(alice, workflows.Lower, "5000")},
		{"lower: negative", "amount", invest(alice, workflows.Lower, "-5")},
		{"invest: unknown direction", "direction", invest(alice, "sideways", "10")},
		{"raise: unknown relationship", "trader_id", invest(bob, workflows.Raise, "100")},
		{"raise: ended relationship", "relationship", invest(carol, workflows.Raise, "100")},

		{"stop loss: negative", "stop_loss", stopLoss(alice, "-1", "")},
		{"stop loss: huge", "stop_loss", stopLoss(alice, "1e400", "")},
		{"stop loss: unknown mode", "stop_mode", stopLoss(alice, "10", "bogus")},
		{"stop loss: unknown relationship", "trader_id", stopLoss(bob, "10", "")},
		{"stop loss: ended relationship", "relationship", stopLoss(carol, "10", "")},

		{"unfollow: unknown relationship", "trader_id", func() error { _, err := e.API.Unfollow(ctx, bob, trader); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, e, alice, trader)
			err := tc.call()
			var fe *copytrade.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || fe.Reason == "" {
				t.Errorf("want a refusal naming %s, got %v", tc.field, err)
			}
			if after := snapshot(t, e, alice, trader); after != before {
				t.Errorf("a refused request changed something:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	if st := e.WaitApplied(ctx, alice, trader, 1); st.Status != workflows.StatusActive || !strings.HasPrefix(st.Settings.Investment.String(), "1000") {
		t.Errorf("alice after the refusals: %s, investment %s", st.Status, st.Settings.Investment)
	}
}
