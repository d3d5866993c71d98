package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/api"
	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/workflows"
)

func cmdDemo(ctx context.Context, e *env, args []string) error {
	f := e.flags("demo")
	if err := f.parse(args); err != nil {
		return err
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	p, err := e.publisher(ctx)
	if err != nil {
		return err
	}
	return runDemo(ctx, e.out, c, p)
}

// demoFollower is one follower of the scripted trader.
type demoFollower struct {
	id         string
	deposit    string
	investment string
	stopLoss   string
}

// runDemo follows a scripted lead trader with three followers of different
// sizes through opens on two instruments, a price move, a partial close, an
// unfollow and a full close, then prints what each follower ended with.
func runDemo(ctx context.Context, out io.Writer, c *api.Client, p *api.Publisher) error {
	run := time.Now().UTC().Format("150405")
	trader := "leader-" + run
	followers := []demoFollower{
		{id: "alice-" + run, deposit: "3000", investment: "1000"},
		{id: "bob-" + run, deposit: "20000", investment: "10000", stopLoss: "2000"},
		{id: "carol-" + run, deposit: "500", investment: "150"},
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, "• "+format+"\n", args...) }
	s := c.Store

	say("lead trader %s: equity 10,000 USDT; BTC at 60,000, ETH at 3,000", trader)
	if err := s.RegisterTrader(ctx, trader, dec("10000")); err != nil {
		return err
	}
	if err := setPrices(ctx, s, "60000", "3000"); err != nil {
		return err
	}
	for _, f := range followers {
		if _, err := s.Deposit(ctx, f.id, dec(f.deposit), "deposit/demo/"+f.id); err != nil {
			return err
		}
		res, err := c.Follow(ctx, copytrade.FollowRequest{
			FollowerID: f.id, TraderID: trader, Investment: dec(f.investment), StopLoss: decOrZero(f.stopLoss),
		})
		if err != nil {
			return fmt.Errorf("follow %s: %w", f.id, err)
		}
		say("%s deposits %s and follows with %s USDT (relationship %s)", f.id, f.deposit, f.investment, res.RelationshipID)
	}

	events := []struct {
		say    string
		ev     copytrade.TraderEvent
		prices [2]string
	}{
		{say: "trader opens BTC long: 1,000 margin at 5x cross, fill 60,000 (fund usage 10%)",
			ev: copytrade.TraderEvent{Kind: copytrade.EventOpen, InstID: "BTC-USDT-SWAP", Side: copytrade.Long, MarginMode: copytrade.Cross,
				Leverage: dec("5"), Margin: dec("1000"), Equity: dec("10000"), Price: dec("60000"), Size: dec("8.33")}},
		{say: "trader opens ETH short: 500 margin at 10x isolated, fill 3,000 (fund usage 5%)",
			ev: copytrade.TraderEvent{Kind: copytrade.EventOpen, InstID: "ETH-USDT-SWAP", Side: copytrade.Short, MarginMode: copytrade.Isolated,
				Leverage: dec("10"), Margin: dec("500"), Equity: dec("10000"), Price: dec("3000"), Size: dec("16.66")}},
		{say: "BTC rises to 61,500; trader closes half the BTC long at 61,500", prices: [2]string{"61500", "3000"},
			ev: copytrade.TraderEvent{Kind: copytrade.EventClose, InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Price: dec("61500"), Size: dec("4.16")}},
	}
	for i, step := range events {
		if step.prices[0] != "" {
			if err := setPrices(ctx, s, step.prices[0], step.prices[1]); err != nil {
				return err
			}
		}
		step.ev.EventID = fmt.Sprintf("%s-e%d", trader, i+1)
		step.ev.TraderID = trader
		say("%s", step.say)
		if err := publishAndWait(ctx, c, p, step.ev, followers); err != nil {
			return err
		}
	}
	say("%s unfollows: positions close at market, funds go back", followers[2].id)
	if _, err := c.Unfollow(ctx, followers[2].id, trader); err != nil {
		return err
	}
	if err := setPrices(ctx, s, "61500", "2900"); err != nil {
		return err
	}
	say("ETH falls to 2,900; trader closes the whole ETH short at 2,900")
	closeETH := copytrade.TraderEvent{EventID: trader + "-e4", TraderID: trader, Kind: copytrade.EventClose,
		InstID: "ETH-USDT-SWAP", Side: copytrade.Short, Price: dec("2900"), Size: dec("16.66")}
	if err := publishAndWait(ctx, c, p, closeETH, followers[:2]); err != nil {
		return err
	}
	say("%s unfollows with BTC still open", followers[0].id)
	if _, err := c.Unfollow(ctx, followers[0].id, trader); err != nil {
		return err
	}
	fmt.Fprintln(out)
	return printDemoSummary(ctx, out, c, trader, followers)
}

// publishAndWait publishes an event and waits until every live follower
// has applied it.
func publishAndWait(ctx context.Context, c *api.Client, p *api.Publisher, ev copytrade.TraderEvent, followers []demoFollower) error {
	rep, err := p.Publish(ctx, ev)
	if err != nil {
		return err
	}
	for _, f := range followers {
		if err := waitApplied(ctx, c, f.id, ev.TraderID, rep.Event.Seq); err != nil {
			return err
		}
	}
	return nil
}

// waitApplied polls the relationship until it has applied seq or ended.
func waitApplied(ctx context.Context, c *api.Client, followerID, traderID string, seq int64) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		view, err := c.State(ctx, followerID, traderID)
		if err == nil && (view.State.LastSeq >= seq || view.State.Status == workflows.StatusEnded) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not apply trader event %d within 30s: %v", followerID, seq, errors.Join(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printDemoSummary(ctx context.Context, out io.Writer, c *api.Client, trader string, followers []demoFollower) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "follower\tstatus\tinvested\tpositions (size @ avg, margin)\trealized PnL\tfees\tunrealized\tnet PnL\treleased\tavailable now\t")
	for _, f := range followers {
		rels, err := c.Store.Relationships(ctx, store.RelationshipFilter{FollowerID: f.id, TraderID: trader})
		if err != nil || len(rels) == 0 {
			return fmt.Errorf("relationship of %s: %w", f.id, err)
		}
		rel := rels[len(rels)-1]
		fig, positions, err := c.Store.Figures(ctx, rel.ID)
		if err != nil {
			return err
		}
		available, err := c.Store.AvailableBalance(ctx, f.id)
		if err != nil {
			return err
		}
		pos := "none"
		for i, p := range positions {
			if i == 0 {
				pos = ""
			} else {
				pos += "; "
			}
			pos += fmt.Sprintf("%s %s %s @ %s, %s", p.InstID, p.Side, p.Size, p.AvgPrice.StringFixed(1), p.Margin.StringFixed(2))
		}
		released := "-"
		if rel.Released != nil {
			released = rel.Released.StringFixed(4)
		}
		orders, _ := c.Store.Orders(ctx, rel.ID)
		realized, fees := decimal.Zero, decimal.Zero
		for _, o := range orders {
			realized = realized.Add(o.GrossPnL)
			fees = fees.Add(o.Fee)
		}
		net := realized.Sub(fees).Add(fig.UnrealizedPnL)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.id, rel.Status, f.investment, pos,
			realized.StringFixed(4), fees.StringFixed(4), fig.UnrealizedPnL.StringFixed(4), net.StringFixed(4), released, available.StringFixed(4))
	}
	return tw.Flush()
}

func setPrices(ctx context.Context, s *store.Store, btc, eth string) error {
	if err := s.SetMarkPrice(ctx, "BTC-USDT-SWAP", dec(btc)); err != nil {
		return err
	}
	return s.SetMarkPrice(ctx, "ETH-USDT-SWAP", dec(eth))
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func decOrZero(s string) decimal.Decimal {
	if s == "" {
		return decimal.Zero
	}
	return dec(s)
}
