package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"smartcopy/api"
	"smartcopy/audit"
	"smartcopy/copytrade"
	"smartcopy/store"
	"smartcopy/system"
	"smartcopy/workflows"
)

// env holds the connections a command opens, each on first use.
type env struct {
	out      io.Writer
	cfg      *system.Config
	pool     *pgxpool.Pool
	temporal client.Client
}

func (e *env) config() (system.Config, error) {
	if e.cfg == nil {
		cfg, err := system.LoadConfigFromEnv()
		if err != nil {
			return cfg, err
		}
		e.cfg = &cfg
	}
	return *e.cfg, nil
}

func (e *env) store(ctx context.Context) (*store.Store, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	if e.pool == nil {
		if e.pool, err = system.OpenDatabase(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return store.New(e.pool, cfg.Workflow.Rules), nil
}

func (e *env) client(ctx context.Context) (*api.Client, error) {
	s, err := e.store(ctx)
	if err != nil {
		return nil, err
	}
	if e.temporal == nil {
		if e.temporal, err = system.DialTemporal(ctx, *e.cfg, slog.Default()); err != nil {
			return nil, err
		}
	}
	c := api.New(e.temporal, s)
	c.TaskQueue = e.cfg.TaskQueue
	return c, nil
}

func (e *env) publisher(ctx context.Context) (*api.Publisher, error) {
	c, err := e.client(ctx)
	if err != nil {
		return nil, err
	}
	p := api.NewPublisher(c.Temporal, c.Store)
	p.TaskQueue = c.TaskQueue
	return p, nil
}

func (e *env) close() {
	if e.temporal != nil {
		e.temporal.Close()
	}
	if e.pool != nil {
		e.pool.Close()
	}
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.out, format, args...) }

func cmdMigrate(ctx context.Context, e *env, args []string) error {
	f := e.flags("migrate")
	if err := f.parse(args); err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	return system.Migrate(ctx, cfg, e.out)
}

func cmdDeposit(ctx context.Context, e *env, args []string) error {
	f := e.flags("deposit")
	follower := f.String("follower", "", "follower id")
	email := f.String("email", "", "follower's email address for notifications (optional)")
	f.decimal("amount", "USDT to add to the available balance")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.id("follower", follower); err != nil {
		return err
	}
	amount, err := f.number("amount", money, false)
	if err != nil {
		return err
	}
	// Checked before the deposit, which a bad address must not leave half done.
	if fe := store.ValidateEmail(*email); fe != nil {
		return asFlags(fe, nil)
	}
	s, err := e.store(ctx)
	if err != nil {
		return err
	}
	available, err := s.Deposit(ctx, *follower, amount, "deposit/cli/"+uuid.NewString())
	if err != nil {
		return asFlags(err, map[string]string{"follower_id": "follower"})
	}
	if *email != "" {
		if err := s.SetFollowerEmail(ctx, *follower, *email); err != nil {
			return asFlags(err, map[string]string{"follower_id": "follower"})
		}
	}
	e.printf("deposited %s USDT to %s; available balance %s USDT\n", amount, *follower, available)
	return nil
}

func cmdTrader(ctx context.Context, e *env, args []string) error {
	f := e.flags("trader")
	trader := f.String("trader", "", "lead trader id")
	f.decimal("equity", "the trader's account equity in USDT")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.id("trader", trader); err != nil {
		return err
	}
	equity, err := f.number("equity", money, false)
	if err != nil {
		return err
	}
	s, err := e.store(ctx)
	if err != nil {
		return err
	}
	if err := s.RegisterTrader(ctx, *trader, equity); err != nil {
		return asFlags(err, map[string]string{"trader_id": "trader"})
	}
	e.printf("lead trader %s registered with equity %s USDT\n", *trader, equity)
	return nil
}

func cmdPrice(ctx context.Context, e *env, args []string) error {
	f := e.flags("price")
	inst := f.String("inst", "", "instrument id, e.g. BTC-USDT-SWAP")
	f.decimal("price", "mark price in USDT")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.required("inst", inst); err != nil {
		return err
	}
	price, err := f.number("price", positive, false)
	if err != nil {
		return err
	}
	s, err := e.store(ctx)
	if err != nil {
		return err
	}
	if err := s.SetMarkPrice(ctx, *inst, price); err != nil {
		return asFlags(err, map[string]string{"inst_id": "inst"})
	}
	e.printf("mark price of %s is %s\n", *inst, price)
	return nil
}

// relFlags are the -follower and -trader flags naming a relationship.
func relFlags(f *flags) (follower, trader *string) {
	return f.String("follower", "", "follower id"), f.String("trader", "", "lead trader id")
}

func checkRel(f *flags, follower, trader *string) error {
	if err := f.id("follower", follower); err != nil {
		return err
	}
	return f.id("trader", trader)
}

// followFlags are follow's flags by the request field they set.
var followFlags = map[string]string{
	"follower_id": "follower", "trader_id": "trader", "investment": "investment",
	"stop_loss": "stop-loss", "stop_mode": "stop-mode",
}

func cmdFollow(ctx context.Context, e *env, args []string) error {
	f := e.flags("follow")
	follower, trader := relFlags(f)
	f.decimal("investment", "USDT to put behind the trader (minimum 100)")
	copyExisting := f.Bool("copy-existing", false, "copy the trader's current positions at market now")
	f.decimal("stop-loss", "maximum loss in USDT before the relationship stops (optional)")
	stopMode := f.String("stop-mode", string(copytrade.MarketClose), "on stop: market_close, copy_close or manual_close")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := checkRel(f, follower, trader); err != nil {
		return err
	}
	investment, err := f.number("investment", money, false)
	if err != nil {
		return err
	}
	stopLoss, err := f.number("stop-loss", zeroOrMoney, true)
	if err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	req := copytrade.FollowRequest{
		FollowerID: *follower, TraderID: *trader, Investment: investment,
		CopyExisting: *copyExisting, StopLoss: stopLoss, StopMode: copytrade.StopMode(*stopMode),
	}.Normalize()
	if fe := req.Validate(cfg.Workflow.Rules); fe != nil {
		return asFlags(fe, followFlags)
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	res, err := c.Follow(ctx, req)
	if err != nil {
		return asFlags(err, followFlags)
	}
	e.printf("%s now follows %s (relationship %s, workflow %s)\n", *follower, *trader, res.RelationshipID, workflows.WorkflowID(*follower, *trader))
	printFund(e.out, res.Fund.Figures, res.Fund.Positions)
	return nil
}

func cmdInvest(ctx context.Context, e *env, args []string) error {
	f := e.flags("invest")
	follower, trader := relFlags(f)
	f.decimal("raise", "USDT to move from the available balance into the copy fund")
	f.decimal("lower", "USDT to release from the copy fund to the available balance")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := checkRel(f, follower, trader); err != nil {
		return err
	}
	raise, err := f.number("raise", money, true)
	if err != nil {
		return err
	}
	lower, err := f.number("lower", money, true)
	if err != nil {
		return err
	}
	req := workflows.InvestmentRequest{Direction: workflows.Raise, Amount: raise}
	switch {
	case raise.IsZero() == lower.IsZero():
		return usageError{"give exactly one of -raise and -lower"}
	case !lower.IsZero():
		req = workflows.InvestmentRequest{Direction: workflows.Lower, Amount: lower}
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	fund, err := c.ChangeInvestment(ctx, *follower, *trader, req)
	if err != nil {
		return asFlags(err, map[string]string{"amount": req.Direction, "trader_id": "trader", "relationship": "trader"})
	}
	e.printf("investment %sd by %s USDT\n", req.Direction, req.Amount)
	printFund(e.out, fund.Figures, fund.Positions)
	return nil
}

func cmdStopLoss(ctx context.Context, e *env, args []string) error {
	f := e.flags("stoploss")
	follower, trader := relFlags(f)
	f.decimal("amount", "maximum loss in USDT; 0 clears the stop loss")
	mode := f.String("mode", "", "on stop: market_close, copy_close or manual_close (default: unchanged)")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := checkRel(f, follower, trader); err != nil {
		return err
	}
	amount, err := f.number("amount", zeroOrMoney, false)
	if err != nil {
		return err
	}
	if m := copytrade.StopMode(*mode); m != "" && !m.Valid() {
		return usageError{fmt.Sprintf("-mode: must be market_close, copy_close or manual_close, got %q", *mode)}
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	settings, err := c.SetStopLoss(ctx, *follower, *trader, workflows.StopLossRequest{StopLoss: amount, StopMode: copytrade.StopMode(*mode)})
	if err != nil {
		return asFlags(err, map[string]string{"stop_loss": "amount", "stop_mode": "mode", "trader_id": "trader", "relationship": "trader"})
	}
	if settings.StopLoss.IsZero() {
		e.printf("stop loss cleared\n")
	} else {
		e.printf("stop loss %s USDT, then %s\n", settings.StopLoss, settings.StopMode)
	}
	return nil
}

func cmdUnfollow(ctx context.Context, e *env, args []string) error {
	f := e.flags("unfollow")
	follower, trader := relFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := checkRel(f, follower, trader); err != nil {
		return err
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	res, err := c.Unfollow(ctx, *follower, *trader)
	if err != nil {
		return asFlags(err, map[string]string{"trader_id": "trader", "relationship": "trader"})
	}
	switch res.Status {
	case workflows.StatusEnded:
		e.printf("%s no longer follows %s; %s USDT released to the available balance\n", *follower, *trader, res.Released)
	default:
		e.printf("%s is unfollowing %s (status %s): positions close as the trader closes, then funds are released\n", *follower, *trader, res.Status)
	}
	return nil
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	f := e.flags("status")
	follower, trader := relFlags(f)
	asJSON := f.Bool("json", false, "print the workflow's state as JSON")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := checkRel(f, follower, trader); err != nil {
		return err
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	view, err := c.State(ctx, *follower, *trader)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return usageError{fmt.Sprintf("-trader: %s does not follow %s", *follower, *trader)}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.out)
		enc.SetIndent("", "  ")
		return enc.Encode(view.State)
	}
	e.printf("%s\n", strings.ReplaceAll(view.Summary, "**", ""))
	return nil
}

func cmdOrders(ctx context.Context, e *env, args []string) error {
	f := e.flags("orders")
	follower, trader := relFlags(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := checkRel(f, follower, trader); err != nil {
		return err
	}
	s, err := e.store(ctx)
	if err != nil {
		return err
	}
	rels, err := s.Relationships(ctx, store.RelationshipFilter{FollowerID: *follower, TraderID: *trader})
	if err != nil {
		return err
	}
	if len(rels) == 0 {
		return usageError{fmt.Sprintf("-trader: %s has never followed %s", *follower, *trader)}
	}
	rel := rels[len(rels)-1]
	orders, err := s.Orders(ctx, rel.ID)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tACTION\tINST\tSIDE\tSTATUS\tSIZE\tPRICE\tMARGIN\tFEE\tPNL\tREASON / SIZING")
	for _, o := range orders {
		why := o.Reason
		if o.Detail != "" {
			why += " — " + o.Detail
		}
		if len(o.Sizing) > 0 && string(o.Sizing) != "null" {
			why += " " + string(o.Sizing)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.CreatedAt.Format(time.TimeOnly), o.TraderEventID, o.Action,
			o.InstID, o.Side, o.Status, o.Size, o.Price, o.Margin, o.Fee, o.GrossPnL, strings.TrimSpace(why))
	}
	return tw.Flush()
}

func cmdList(ctx context.Context, e *env, args []string) error {
	f := e.flags("list")
	follower := f.String("follower", "", "list this follower's relationships")
	trader := f.String("trader", "", "list this trader's followers")
	live := f.Bool("live", false, "only relationships that have not ended")
	if err := f.parse(args); err != nil {
		return err
	}
	if *follower == "" && *trader == "" {
		return usageError{"give -follower or -trader"}
	}
	if err := f.optionalID("follower", follower); err != nil {
		return err
	}
	if err := f.optionalID("trader", trader); err != nil {
		return err
	}
	s, err := e.store(ctx)
	if err != nil {
		return err
	}
	rels, err := s.Relationships(ctx, store.RelationshipFilter{FollowerID: *follower, TraderID: *trader, LiveOnly: *live})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FOLLOWER\tTRADER\tSTATUS\tINVESTMENT\tSTOP LOSS\tSTOP MODE\tSINCE\tWORKFLOW")
	for _, r := range rels {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.FollowerID, r.TraderID, r.Status, r.Investment, r.StopLoss,
			r.StopMode, r.CreatedAt.Format(time.DateTime), r.WorkflowID)
	}
	return tw.Flush()
}

func cmdFind(ctx context.Context, e *env, args []string) error {
	f := e.flags("find")
	query := f.String("query", "", `Temporal visibility query, e.g. TraderID="t1" AND CopyStatus="active"`)
	trader := f.String("trader", "", "shorthand: the live relationships of this trader")
	if err := f.parse(args); err != nil {
		return err
	}
	switch {
	case *query == "" && *trader == "":
		return usageError{"give -query or -trader"}
	case *query == "":
		if err := f.id("trader", trader); err != nil {
			return err
		}
		*query = fmt.Sprintf("%s = %q AND %s = %q", workflows.SearchTraderID.GetName(), *trader,
			workflows.SearchCopyStatus.GetName(), workflows.StatusActive)
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	found, err := c.Find(ctx, *query)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKFLOW\tFOLLOWER\tTRADER\tCOPY STATUS\tRUNNING")
	for _, x := range found {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", x.WorkflowID, x.FollowerID, x.TraderID, x.CopyStatus, x.Running)
	}
	return tw.Flush()
}

func cmdInbox(ctx context.Context, e *env, args []string) error {
	f := e.flags("inbox")
	follower := f.String("follower", "", "follower id")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.id("follower", follower); err != nil {
		return err
	}
	s, err := e.store(ctx)
	if err != nil {
		return err
	}
	msgs, err := s.Inbox(ctx, *follower)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		e.printf("no notifications for %s\n", *follower)
	}
	for _, m := range msgs {
		e.printf("%s  [%s] %s\n    %s\n", m.CreatedAt.Format(time.DateTime), m.Kind, m.Subject, m.Body)
	}
	return nil
}

func cmdPublish(ctx context.Context, e *env, args []string) error {
	f := e.flags("publish")
	trader := f.String("trader", "", "lead trader id")
	eventID := f.String("event", "", "upstream event id (the same id twice is one event)")
	kind := f.String("kind", "", "open, close, leverage or margin")
	inst := f.String("inst", "", "instrument id, e.g. BTC-USDT-SWAP")
	side := f.String("side", "", "long or short")
	mode := f.String("mode", "", "margin mode of an open: cross or isolated")
	f.decimal("leverage", "leverage (open, leverage)")
	f.decimal("margin", "the trader's order margin in USDT (open)")
	f.decimal("equity", "the trader's account equity in USDT as of the order (open)")
	f.decimal("price", "the trader's fill price (open, close)")
	f.decimal("size", "contracts opened or closed (open, close)")
	f.decimal("delta", "margin added (positive) or removed (negative) (margin)")
	if err := f.parse(args); err != nil {
		return err
	}
	ev := copytrade.TraderEvent{
		EventID: *eventID, TraderID: *trader, Kind: copytrade.EventKind(*kind), InstID: *inst,
		Side: copytrade.Side(*side), MarginMode: copytrade.MarginMode(*mode), At: time.Now().UTC(),
	}
	for _, field := range []struct {
		name string
		rule rule
		dst  *decimal.Decimal
	}{
		{"leverage", positive, &ev.Leverage}, {"margin", money, &ev.Margin}, {"equity", money, &ev.Equity},
		{"price", positive, &ev.Price}, {"size", positive, &ev.Size}, {"delta", change, &ev.MarginDelta},
	} {
		v, err := f.number(field.name, field.rule, true)
		if err != nil {
			return err
		}
		*field.dst = v
	}
	if fe := ev.Validate(); fe != nil {
		return usageError{"-" + eventFlag(fe.Field) + ": " + fe.Reason}
	}
	p, err := e.publisher(ctx)
	if err != nil {
		return err
	}
	rep, err := p.Publish(ctx, ev)
	if err != nil {
		var fe *copytrade.FieldError
		if errors.As(err, &fe) {
			return usageError{"-" + eventFlag(fe.Field) + ": " + fe.Reason}
		}
		return err
	}
	dup := ""
	if rep.Duplicate {
		dup = " (a duplicate: already recorded, delivered again and applied once)"
	}
	e.printf("published %s %s %s %s as seq %d of %s%s: delivered to %d relationship(s)\n",
		ev.EventID, ev.Kind, ev.InstID, ev.Side, rep.Event.Seq, ev.TraderID, dup, rep.Delivered)
	return nil
}

func cmdAudit(ctx context.Context, e *env, args []string) error {
	f := e.flags("audit")
	settle := f.Duration("settle", 5*time.Second, "how long a live relationship's workflow may disagree with PostgreSQL (an order in flight) before it counts")
	if err := f.parse(args); err != nil {
		return err
	}
	if *settle <= 0 {
		return usageError{fmt.Sprintf("-settle: must be a positive duration such as 5s, got %s", *settle)}
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	rep, err := audit.Run(ctx, c, audit.Options{Settle: *settle})
	if err != nil {
		return err
	}
	rep.Print(e.out)
	if !rep.OK() {
		return fmt.Errorf("audit found %d difference(s)", len(rep.Differences))
	}
	return nil
}

func printFund(out io.Writer, f copytrade.Figures, positions []copytrade.Position) {
	fmt.Fprintf(out, "  investment %s, equity %s, used %s, available %s USDT; net PnL %s\n",
		f.Investment, f.Equity, f.Used, f.Available, f.NetPnL)
	for _, p := range positions {
		fmt.Fprintf(out, "  %s %s %s contracts @ %s, %sx %s, margin %s\n", p.InstID, p.Side, p.Size, p.AvgPrice.StringFixed(2), p.Leverage, p.MarginMode, p.Margin)
	}
}

// eventFlag names the publish flag that sets a trader event's field.
func eventFlag(field string) string {
	switch field {
	case "event_id":
		return "event"
	case "trader_id":
		return "trader"
	case "inst_id":
		return "inst"
	case "margin_mode":
		return "mode"
	case "margin_delta":
		return "delta"
	}
	return field
}
