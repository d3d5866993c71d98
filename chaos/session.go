package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"smartcopy/api"
	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/store"
	"smartcopy/workflows"
)

// Config is one run of the suite: how long the trading session is, how
// many followers trade through it, and how many of each fault it injects.
type Config struct {
	Name      string
	Seed      int64
	Followers int
	Steps     int

	KillsInPlacement    int
	KillsAfterPlacement int
	KillsRandom         int
	Restarts            int
	Cuts                int
	Outages             int           // the database refuses connections for OutageFor
	OutageFor           time.Duration // longer than a local activity's 30 s budget in the full run
	OutOfOrder          int           // batches of three events signalled in reverse
	Concurrent          int           // raise and lower of one relationship at once
	UnfollowInFlight    int           // unfollow while the trader's open is being copied
	StopLosses          int           // a stop loss set where net PnL already is
	LateFollows         int           // follow mid-session with copy-existing

	// HistoryLimit makes relationships continue-as-new often, so the
	// faults also land around continue-as-new.
	HistoryLimit int
	// KeepDir keeps the worker logs and the server's DB file.
	KeepDir bool
	Log     io.Writer
	Verbose bool
}

// Short is the version the normal test command runs: every kind of fault
// once or twice, in well under 90 s.
func Short(seed int64) Config {
	return Config{
		Name: "short", Seed: seed, Followers: 3, Steps: 16,
		KillsInPlacement: 1, KillsAfterPlacement: 1, KillsRandom: 1,
		Restarts: 1, Cuts: 2, OutOfOrder: 1, Concurrent: 1, UnfollowInFlight: 1, StopLosses: 1, LateFollows: 1,
		Outages: 1, OutageFor: 5 * time.Second,
	}
}

// Full is `make chaos`: a longer session, more of every fault, and
// continue-as-new every few dozen events.
func Full(seed int64) Config {
	return Config{
		Name: "full", Seed: seed, Followers: 6, Steps: 70,
		KillsInPlacement: 3, KillsAfterPlacement: 3, KillsRandom: 4,
		Restarts: 2, Cuts: 4, OutOfOrder: 3, Concurrent: 3, UnfollowInFlight: 2, StopLosses: 1, LateFollows: 1,
		Outages: 1, OutageFor: 45 * time.Second,
		HistoryLimit: 250,
	}
}

// fault is one thing that goes wrong at a step.
type fault string

const (
	fKillInPlacement    fault = "kill inside order placement"
	fKillAfterPlacement fault = "kill between placing and recording"
	fKillRandom         fault = "kill at a random moment"
	fRestart            fault = "restart Temporal"
	fCut                fault = "cut PostgreSQL connections"
	fOutage             fault = "PostgreSQL down"
	fOutOfOrder         fault = "out-of-order events"
	fConcurrent         fault = "concurrent raise and lower"
	fUnfollowInFlight   fault = "unfollow during an open"
	fStopLoss           fault = "stop loss reached"
	fLateFollow         fault = "late follow with copy-existing"
)

// schedule spreads the faults over the session's steps in an order the
// seed decides, one per step, leaving the first steps for the opens.
func (c Config) schedule(rng *rand.Rand) map[int]fault {
	var all []fault
	add := func(f fault, n int) {
		for range n {
			all = append(all, f)
		}
	}
	add(fKillInPlacement, c.KillsInPlacement)
	add(fKillAfterPlacement, c.KillsAfterPlacement)
	add(fKillRandom, c.KillsRandom)
	add(fRestart, c.Restarts)
	add(fCut, c.Cuts)
	add(fOutage, c.Outages)
	add(fOutOfOrder, c.OutOfOrder)
	add(fConcurrent, c.Concurrent)
	add(fUnfollowInFlight, c.UnfollowInFlight)
	add(fStopLoss, c.StopLosses)
	add(fLateFollow, c.LateFollows)
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	plan := map[int]fault{}
	const first = 2
	span := c.Steps - first
	for i, f := range all {
		plan[first+i*span/len(all)] = f
	}
	return plan
}

// follower is one follower and what the suite knows of its relationship,
// for the expected-orders count.
type follower struct {
	id, relID string
	mode      copytrade.StopMode
	followSeq int64
	// book is the trader's book at follow time (copy-existing followers).
	book  []copytrade.Position
	ended bool
	// stopEvent is the trader event id of the stop's market closes
	// (workflows.StopUnfollow or StopLoss); stopSeq is the last event the
	// relationship surely applied before it stopped; racy events were
	// published while the unfollow ran.
	stopEvent string
	stopSeq   int64
	racy      map[int64]bool
}

// session is one scripted trading session under faults.
type session struct {
	cfg    Config
	s      *stack
	f      *Figures
	rng    *rand.Rand
	trader string
	equity decimal.Decimal
	// book is the trader's position sizes by key, as the suite published.
	book      map[copytrade.PositionKey]*tpos
	base      map[string]decimal.Decimal
	mark      map[string]decimal.Decimal
	followers []*follower
	sent      []copytrade.TraderEvent // recorded events, as recorded
	n         int
	// stopLossDue: the stop-loss fault found no follower at a loss yet and
	// takes the next step without a fault of its own.
	stopLossDue bool
}

type tpos struct {
	size, lev decimal.Decimal
	mode      copytrade.MarginMode
}

var instruments = []string{"BTC-USDT-SWAP", "ETH-USDT-SWAP"}

// ctVals and ticks are the instruments' as schema/0002_venue.sql lists
// them; the lot is 0.01 for both.
var (
	ctVals = map[string]decimal.Decimal{"BTC-USDT-SWAP": d("0.01"), "ETH-USDT-SWAP": d("0.1")}
	ticks  = map[string]decimal.Decimal{"BTC-USDT-SWAP": d("0.1"), "ETH-USDT-SWAP": d("0.01")}
	lot    = d("0.01")
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// Run starts the system, plays the session with its faults, waits until
// every relationship has caught up, then counts the orders and audits.
// The figures say what happened; Problems lists every failure.
func Run(ctx context.Context, cfg Config) (*Figures, error) {
	began := time.Now()
	f := &Figures{Name: cfg.Name, Seed: cfg.Seed, log: cfg.Log, verbose: cfg.Verbose, began: began}
	s, err := startStack(ctx, cfg)
	if err != nil {
		return f, fmt.Errorf("start the system: %w", err)
	}
	defer s.close()
	f.note("system up in %s: Temporal %s, database %s, worker %s", time.Since(began).Round(time.Millisecond), s.temporal.Address, s.dbName, s.workerBin)
	ss := &session{
		cfg: cfg, s: s, f: f, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		trader: "trader", equity: d("100000"),
		book: map[copytrade.PositionKey]*tpos{},
		base: map[string]decimal.Decimal{"BTC-USDT-SWAP": d("60000"), "ETH-USDT-SWAP": d("3000")},
		mark: map[string]decimal.Decimal{},
	}
	err = ss.play(ctx)
	if err == nil {
		err = ss.settle(ctx)
	}
	if err == nil {
		err = ss.verify(ctx)
	}
	if err != nil {
		f.problem("%v", err)
	}
	s.mu.Lock()
	f.WorkerExits, f.WorkerStartFailures, f.Workers = len(s.exits), len(s.failures), s.workers
	for _, tail := range s.exits {
		f.problem("a worker exited while running, without being killed; its log ends:\n%s", tail)
	}
	for _, tail := range s.failures {
		f.note("a worker could not start; its log ends:\n%s", tail)
	}
	s.mu.Unlock()
	if len(f.Problems) > 0 {
		log := s.workerLog()
		f.Diagnostics = fmt.Sprintf("worker log (last lines of %s):\n%s", log, logTail(log, 20))
	}
	f.Elapsed = time.Since(began)
	return f, nil
}

// play sets up the trader and followers and runs the steps.
func (ss *session) play(ctx context.Context) error {
	s, f := ss.s, ss.f
	if _, err := retry(ctx, f, "register trader", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.store.RegisterTrader(ctx, ss.trader, ss.equity)
	}); err != nil {
		return err
	}
	for inst, p := range ss.base {
		if err := ss.setMark(ctx, inst, p); err != nil {
			return err
		}
	}
	for i := range ss.cfg.Followers {
		mode := copytrade.MarketClose
		if i%3 == 2 {
			mode = copytrade.ManualClose
		}
		if err := ss.follow(ctx, fmt.Sprintf("f%d", i), mode, false); err != nil {
			return err
		}
	}
	plan := ss.cfg.schedule(ss.rng)
	for step := range ss.cfg.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		ss.movePrice(ctx)
		fl, ok := plan[step]
		if !ok && ss.stopLossDue {
			fl, ok = fStopLoss, true
		}
		if ok {
			f.note("step %d: %s", step, fl)
		}
		var err error
		switch fl {
		case fKillInPlacement:
			err = ss.killInPlacement(ctx)
		case fKillAfterPlacement:
			err = ss.killAfterPlacement(ctx)
		case fRestart:
			err = ss.restart(ctx)
		case fOutOfOrder:
			err = ss.outOfOrder(ctx)
		case fUnfollowInFlight:
			err = ss.unfollowInFlight(ctx)
		case fStopLoss:
			err = ss.stopLoss(ctx)
		case fOutage:
			err = ss.outage(ctx)
		default:
			_, err = ss.publish(ctx, ss.nextEvent(ctx, ""))
			if err == nil {
				err = ss.afterPublish(ctx, fl)
			}
		}
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", step, fl, err)
		}
		ss.duplicates(ctx)
	}
	if ss.stopLossDue {
		ss.f.note("no follower closing at market was a cent down at any step after the stop-loss fault: it did not run")
	}
	return nil
}

// afterPublish injects the faults that follow a plain publish.
func (ss *session) afterPublish(ctx context.Context, fl fault) error {
	s, f := ss.s, ss.f
	switch fl {
	case fKillRandom:
		time.Sleep(time.Duration(ss.rng.IntN(40)) * time.Millisecond)
		ss.kill(ctx, &f.KillsRandom)
		time.Sleep(time.Duration(ss.rng.IntN(300)) * time.Millisecond)
		return s.startWorker()
	case fCut:
		for i := range 1 + ss.rng.IntN(2) {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			n, err := s.cutConnections(ctx)
			if err != nil {
				return err
			}
			f.Cuts++
			f.ConnectionsCut += n
		}
	case fConcurrent:
		return ss.concurrentUpdates(ctx)
	case fLateFollow:
		f.LateFollows++
		return ss.follow(ctx, fmt.Sprintf("late%d", f.LateFollows), copytrade.MarketClose, true)
	}
	return nil
}

// kill SIGKILLs the worker, noting whether it had a transaction open.
func (ss *session) kill(ctx context.Context, kind *int) {
	if ss.s.openTransactions(ctx) > 0 {
		ss.f.KillsWithTxOpen++
	}
	ss.s.killWorker()
	ss.f.Kills++
	*kind++
}

// follow deposits and follows; late followers copy the trader's existing
// positions (R5).
func (ss *session) follow(ctx context.Context, id string, mode copytrade.StopMode, copyExisting bool) error {
	s, f := ss.s, ss.f
	if _, err := retry(ctx, f, "deposit "+id, func(ctx context.Context) (decimal.Decimal, error) {
		return s.store.Deposit(ctx, id, d("50000"), "deposit/"+id)
	}); err != nil {
		return err
	}
	fl := &follower{id: id, mode: mode, racy: map[int64]bool{}}
	if copyExisting {
		b, err := retry(ctx, f, "trader book", func(ctx context.Context) (store.TraderBook, error) {
			return s.store.TraderBook(ctx, ss.trader)
		})
		if err != nil {
			return err
		}
		fl.book = b.Positions
	}
	req := copytrade.FollowRequest{FollowerID: id, TraderID: ss.trader, Investment: d("10000"), CopyExisting: copyExisting, StopMode: mode}
	_, err := retry(ctx, f, "follow "+id, func(ctx context.Context) (struct{}, error) {
		_, err := s.api.Follow(ctx, req)
		return struct{}{}, err
	})
	var fe *copytrade.FieldError
	if err != nil && !errors.As(err, &fe) {
		return err
	}
	// A follow retried after its first attempt went through is refused as
	// "already follows": the projection has it either way.
	rel, lerr := retry(ctx, f, "relationship of "+id, func(ctx context.Context) (store.Relationship, error) {
		return s.store.LiveRelationship(ctx, id, ss.trader)
	})
	if lerr != nil {
		return fmt.Errorf("follow %s: %v (projection: %w)", id, err, lerr)
	}
	fl.relID, fl.followSeq = rel.ID, rel.TraderSeqAtFollow
	ss.followers = append(ss.followers, fl)
	f.Followers++
	return nil
}

// movePrice moves one mark price by 0.1% now and then, within 0.2% of
// where it started, so that a copy applied late never trips spread
// protection (0.5%) and every open that can fill does.
func (ss *session) movePrice(ctx context.Context) {
	if ss.rng.IntN(2) == 0 {
		return
	}
	inst := instruments[ss.rng.IntN(len(instruments))]
	step := ss.base[inst].Mul(d("0.001"))
	p := ss.mark[inst].Add(step)
	if ss.rng.IntN(2) == 0 {
		p = ss.mark[inst].Sub(step)
	}
	if p.Sub(ss.base[inst]).Abs().GreaterThan(ss.base[inst].Mul(d("0.002"))) {
		return
	}
	_ = ss.setMark(ctx, inst, p)
}

func (ss *session) setMark(ctx context.Context, inst string, p decimal.Decimal) error {
	p = p.Div(ticks[inst]).Round(0).Mul(ticks[inst])
	_, err := retry(ctx, ss.f, "mark price", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, ss.s.store.SetMarkPrice(ctx, inst, p)
	})
	if err == nil {
		ss.mark[inst] = p
	}
	return err
}

// nextEvent is the trader's next move: kind "" lets the seed choose.
func (ss *session) nextEvent(ctx context.Context, kind copytrade.EventKind) copytrade.TraderEvent {
	held := ss.heldKeys()
	if kind == "" {
		switch r := ss.rng.IntN(100); {
		case len(held) == 0 || r < 40:
			kind = copytrade.EventOpen
		case r < 70:
			kind = copytrade.EventClose
		case r < 85:
			kind = copytrade.EventLeverage
		default:
			kind = copytrade.EventMargin
		}
	}
	ss.n++
	ev := copytrade.TraderEvent{EventID: fmt.Sprintf("e%03d", ss.n), TraderID: ss.trader, Kind: kind, At: time.Now().UTC()}
	if kind == copytrade.EventOpen {
		return ss.open(ev)
	}
	key := held[ss.rng.IntN(len(held))]
	p := ss.book[key]
	ev.InstID, ev.Side = key.InstID, key.Side
	switch kind {
	case copytrade.EventClose:
		ev.Price = ss.mark[key.InstID]
		ev.Size = p.size
		if p.size.GreaterThan(d("0.1")) && ss.rng.IntN(100) < 60 {
			ev.Size = p.size.Div(d("2")).Div(lot).Floor().Mul(lot)
		}
		p.size = p.size.Sub(ev.Size)
	case copytrade.EventLeverage:
		lev := decimal.NewFromInt(int64(2 + ss.rng.IntN(19)))
		if lev.Equal(p.lev) {
			lev = lev.Add(decimal.NewFromInt(1))
		}
		ev.Leverage, p.lev = lev, lev
	case copytrade.EventMargin:
		// Margin moves only on isolated positions; the book's margin is
		// the store's (leverage changes move it), so read it there.
		b, err := retry(ctx, ss.f, "trader book", func(ctx context.Context) (store.TraderBook, error) {
			return ss.s.store.TraderBook(ctx, ss.trader)
		})
		pos, ok := b.Position(key)
		if err != nil || !ok || pos.MarginMode != copytrade.Isolated || !pos.Margin.IsPositive() {
			ss.n--
			return ss.nextEvent(ctx, copytrade.EventLeverage)
		}
		ev.MarginDelta = pos.Margin.Mul(d("0.05")).Round(2)
		if ss.rng.IntN(3) == 0 {
			ev.MarginDelta = pos.Margin.Mul(d("-0.03")).Round(2)
		}
		if ev.MarginDelta.IsZero() {
			ev.MarginDelta = d("1")
		}
	}
	return ev
}

// open is a trader open of 1-2% of equity as margin; on a key already held
// it keeps the position's mode and leverage.
func (ss *session) open(ev copytrade.TraderEvent) copytrade.TraderEvent {
	inst := instruments[ss.rng.IntN(len(instruments))]
	side := copytrade.Long
	if ss.rng.IntN(2) == 0 {
		side = copytrade.Short
	}
	key := copytrade.PositionKey{InstID: inst, Side: side}
	p, ok := ss.book[key]
	if !ok {
		p = &tpos{size: decimal.Zero, lev: decimal.NewFromInt(int64(3 + ss.rng.IntN(8))), mode: copytrade.Cross}
		if ss.rng.IntN(2) == 0 {
			p.mode = copytrade.Isolated
		}
		ss.book[key] = p
	}
	margin := ss.equity.Mul(decimal.NewFromInt(int64(10 + ss.rng.IntN(11)))).Div(d("1000"))
	price := ss.mark[inst]
	ev.InstID, ev.Side, ev.MarginMode, ev.Leverage = inst, side, p.mode, p.lev
	ev.Margin, ev.Equity, ev.Price = margin, ss.equity, price
	ev.Size = margin.Mul(p.lev).Div(price.Mul(ctVals[inst])).Div(lot).Floor().Mul(lot)
	p.size = p.size.Add(ev.Size)
	return ev
}

func (ss *session) heldKeys() []copytrade.PositionKey {
	var keys []copytrade.PositionKey
	for _, inst := range instruments {
		for _, side := range []copytrade.Side{copytrade.Long, copytrade.Short} {
			k := copytrade.PositionKey{InstID: inst, Side: side}
			if p, ok := ss.book[k]; ok && p.size.IsPositive() {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// publish publishes an event with the Publisher, again after any error:
// publishing is idempotent by event id, so a retry after a delivery that
// failed half way (a server restarting) re-delivers what was missed and
// the workflows drop what they had.
func (ss *session) publish(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, error) {
	rep, err := retry(ctx, ss.f, "publish "+ev.EventID, func(ctx context.Context) (api.PublishReport, error) {
		return ss.s.pub.Publish(ctx, ev)
	})
	if err != nil {
		return ev, err
	}
	ss.f.Published++
	ss.f.Events++
	ss.sent = append(ss.sent, rep.Event)
	return rep.Event, nil
}

// record records an event without delivering it, as the first half of a
// publish; the caller signals it.
func (ss *session) record(ctx context.Context, ev copytrade.TraderEvent) (copytrade.TraderEvent, error) {
	rec, err := retry(ctx, ss.f, "record "+ev.EventID, func(ctx context.Context) (copytrade.TraderEvent, error) {
		rec, _, err := ss.s.store.RecordTraderEvent(ctx, ev)
		return rec, err
	})
	if err != nil {
		return ev, err
	}
	ss.f.Events++
	ss.f.Signalled++
	ss.sent = append(ss.sent, rec)
	return rec, nil
}

// signal delivers a recorded event straight to one relationship's
// workflow; a workflow that has closed is not an error.
func (ss *session) signal(ctx context.Context, followerID string, ev copytrade.TraderEvent) error {
	_, err := retry(ctx, ss.f, "signal "+ev.EventID, func(ctx context.Context) (struct{}, error) {
		err := ss.s.client.SignalWorkflow(ctx, workflows.WorkflowID(followerID, ss.trader), "", workflows.SignalTraderEvent, ev)
		if isNotFound(err) {
			err = nil
		}
		return struct{}{}, err
	})
	return err
}

// live are the relationships that are following now.
func (ss *session) live(ctx context.Context) ([]store.Relationship, error) {
	return retry(ctx, ss.f, "live followers", func(ctx context.Context) ([]store.Relationship, error) {
		return ss.s.store.LiveFollowers(ctx, ss.trader)
	})
}

// duplicates re-delivers events now and then: the same event published
// again at once, or an older event signalled again to a workflow long
// after it was applied.
func (ss *session) duplicates(ctx context.Context) {
	if len(ss.sent) == 0 {
		return
	}
	switch r := ss.rng.IntN(100); {
	case r < 20:
		ev := ss.sent[len(ss.sent)-1]
		if _, err := retry(ctx, ss.f, "publish again "+ev.EventID, func(ctx context.Context) (api.PublishReport, error) {
			return ss.s.pub.Publish(ctx, ev)
		}); err == nil {
			ss.f.Duplicates++
		}
	case r < 35:
		ev := ss.sent[ss.rng.IntN(len(ss.sent))]
		rels, err := ss.live(ctx)
		if err != nil || len(rels) == 0 {
			return
		}
		rel := rels[ss.rng.IntN(len(rels))]
		if rel.TraderSeqAtFollow >= ev.Seq {
			return
		}
		if ss.signal(ctx, rel.FollowerID, ev) == nil {
			ss.f.Duplicates++
		}
	}
}

// activeFollower picks a follower whose relationship has not ended.
func (ss *session) activeFollower() *follower {
	var live []*follower
	for _, fl := range ss.followers {
		if !fl.ended {
			live = append(live, fl)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[ss.rng.IntN(len(live))]
}

// blockedBy counts the backends waiting on a lock held by pid.
func (ss *session) blockedBy(ctx context.Context, pid uint32) int {
	var n int
	_ = ss.s.pool.QueryRow(ctx, `select count(*) from pg_stat_activity where $1::int = any(pg_blocking_pids(pid))`, pid).Scan(&n)
	return n
}

// holdLock opens a transaction that takes lockSQL and returns it with its
// backend pid, trying again on a connection a cut left dead.
func (ss *session) holdLock(ctx context.Context, lockSQL string, args ...any) (pgx.Tx, uint32, error) {
	type held struct {
		tx  pgx.Tx
		pid uint32
	}
	h, err := retry(ctx, ss.f, "lock", func(actx context.Context) (held, error) {
		tx, pid, err := ss.tryLock(ctx, lockSQL, args...)
		return held{tx, pid}, err
	})
	return h.tx, h.pid, err
}

func (ss *session) tryLock(ctx context.Context, lockSQL string, args ...any) (pgx.Tx, uint32, error) {
	tx, err := ss.s.pool.Begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	var pid uint32
	if err := tx.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid); err != nil {
		tx.Rollback(ctx)
		return nil, 0, err
	}
	if _, err := tx.Exec(ctx, lockSQL, args...); err != nil {
		tx.Rollback(ctx)
		return nil, 0, err
	}
	return tx, pid, nil
}

// waitFor polls cond for up to 20 s.
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// killInPlacement holds one relationship's fund row, which every order
// placement locks first, publishes an open, waits until that
// relationship's placement is blocked inside its transaction, and kills
// the worker there. The new worker must place the order exactly once.
func (ss *session) killInPlacement(ctx context.Context) error {
	fl := ss.activeFollower()
	if fl == nil {
		_, err := ss.publish(ctx, ss.nextEvent(ctx, ""))
		return err
	}
	tx, pid, err := ss.holdLock(ctx, `select 1 from ledger_accounts where id = $1 for update`, ledger.Fund(fl.relID))
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := ss.publish(ctx, ss.nextEvent(ctx, copytrade.EventOpen)); err != nil {
		return err
	}
	kind := &ss.f.KillsInPlacement
	if !waitFor(func() bool { return ss.blockedBy(ctx, pid) > 0 }) {
		ss.f.note("no placement blocked on %s's fund; killing anyway", fl.id)
		kind = &ss.f.KillsRandom
	}
	ss.kill(ctx, kind)
	tx.Rollback(ctx)
	return ss.s.startWorker()
}

// killAfterPlacement locks the relationships table, which order placement
// does not touch but reading the fund right after it does, records an open
// and signals it to every relationship, waits until an order is committed
// and its activity is blocked reading the fund, and kills the worker
// there: the order is placed and the workflow does not know. (The order
// may be of an earlier event a relationship was still copying.) The new
// worker must find it and not place it again.
func (ss *session) killAfterPlacement(ctx context.Context) error {
	rels, err := ss.live(ctx)
	if err != nil {
		return err
	}
	tx, pid, err := ss.holdLock(ctx, `lock table relationships in access exclusive mode`)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	orders := func() int {
		var n int
		_ = ss.s.pool.QueryRow(ctx, `select count(*) from orders`).Scan(&n)
		return n
	}
	before := orders()
	ev, err := ss.record(ctx, ss.nextEvent(ctx, copytrade.EventOpen))
	if err != nil {
		return err
	}
	for _, rel := range rels {
		if err := ss.signal(ctx, rel.FollowerID, ev); err != nil {
			return err
		}
	}
	kind := &ss.f.KillsAfterPlacement
	if !waitFor(func() bool { return orders() > before && ss.blockedBy(ctx, pid) > 0 }) {
		ss.f.note("no copy blocked after placing %s; killing anyway", ev.EventID)
		kind = &ss.f.KillsRandom
	}
	ss.kill(ctx, kind)
	tx.Rollback(ctx)
	return ss.s.startWorker()
}

// restart restarts the Temporal dev server and publishes the next event
// while it is down: the publish fails until the server is back, and is
// retried.
func (ss *session) restart(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- ss.s.temporal.Restart(ctx) }()
	down := waitFor(func() bool {
		hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := ss.s.client.CheckHealth(hctx, nil)
		return err != nil
	})
	if !down {
		ss.f.note("the server did not go down within 20 s of the restart")
	}
	before := ss.f.Retries
	_, perr := ss.publish(ctx, ss.nextEvent(ctx, ""))
	if err := <-done; err != nil {
		return fmt.Errorf("restart Temporal: %w", err)
	}
	ss.f.Restarts++
	ss.f.note("restarted Temporal; the publish meanwhile was retried %d time(s)", ss.f.Retries-before)
	return perr
}

// outOfOrder records three events and signals them to every relationship
// in reverse order, the middle one twice: each relationship must hold the
// later ones back and apply all three in the trader's order, once.
func (ss *session) outOfOrder(ctx context.Context) error {
	var evs []copytrade.TraderEvent
	for range 3 {
		ev, err := ss.record(ctx, ss.nextEvent(ctx, ""))
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	rels, err := ss.live(ctx)
	if err != nil {
		return err
	}
	for _, rel := range rels {
		for _, i := range []int{2, 1, 1, 0} {
			if rel.TraderSeqAtFollow >= evs[i].Seq {
				continue
			}
			if err := ss.signal(ctx, rel.FollowerID, evs[i]); err != nil {
				return err
			}
		}
		ss.f.Duplicates++
	}
	ss.f.OutOfOrder += len(evs)
	return nil
}

// outage records an open, then takes the database away (it refuses every
// connection, and every open one is cut) and signals the open to every
// relationship: their copies fail to connect for the whole outage, and
// must place the order once the database is back, however long it was
// away.
func (ss *session) outage(ctx context.Context) error {
	rels, err := ss.live(ctx)
	if err != nil {
		return err
	}
	ev, err := ss.record(ctx, ss.nextEvent(ctx, copytrade.EventOpen))
	if err != nil {
		return err
	}
	if err := ss.s.databaseDown(ctx, true); err != nil {
		return err
	}
	up := func() error { return ss.s.databaseDown(context.WithoutCancel(ctx), false) }
	for _, rel := range rels {
		if err := ss.signal(ctx, rel.FollowerID, ev); err != nil {
			up()
			return err
		}
	}
	time.Sleep(ss.cfg.OutageFor)
	if err := up(); err != nil {
		return err
	}
	ss.f.Outages++
	ss.f.note("the database was down for %s while %s was copied", ss.cfg.OutageFor, ev.EventID)
	return nil
}

// concurrentUpdates raises and lowers one relationship's investment at the
// same moment. Both answer, in some order; a refusal must name its field.
func (ss *session) concurrentUpdates(ctx context.Context) error {
	fl := ss.activeFollower()
	if fl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, req := range []workflows.InvestmentRequest{
		{Direction: workflows.Raise, Amount: d("500")},
		{Direction: workflows.Lower, Amount: d("300")},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ss.s.api.ChangeInvestment(ctx, fl.id, ss.trader, req)
		}()
	}
	wg.Wait()
	ss.f.Concurrent++
	for _, err := range errs {
		ss.f.Updates++
		var fe *copytrade.FieldError
		switch {
		case err == nil:
		case errors.As(err, &fe) && fe.Field != "":
			ss.f.Refusals++
		default:
			return fmt.Errorf("change investment of %s: %w", fl.id, err)
		}
	}
	return nil
}

// unfollowInFlight waits until a follower has applied every event so far,
// then publishes an open and unfollows at the same moment. Either the open
// is copied and then closed by the unfollow, or it is not copied at all.
func (ss *session) unfollowInFlight(ctx context.Context) error {
	// Turn about, a follower who closes at market and one who takes the
	// positions over.
	mode := copytrade.MarketClose
	if ss.f.UnfollowsInFlight%2 == 1 {
		mode = copytrade.ManualClose
	}
	var fl *follower
	for _, c := range ss.followers {
		if !c.ended && (fl == nil || c.mode == mode) {
			fl = c
		}
	}
	if fl == nil || len(ss.sent) == 0 {
		_, err := ss.publish(ctx, ss.nextEvent(ctx, ""))
		return err
	}
	last := ss.sent[len(ss.sent)-1].Seq
	if err := ss.waitApplied(ctx, fl, last); err != nil {
		return err
	}
	ev := ss.nextEvent(ctx, copytrade.EventOpen)
	var wg sync.WaitGroup
	var perr, uerr error
	var recorded copytrade.TraderEvent
	var res workflows.UnfollowResult
	wg.Add(2)
	go func() { defer wg.Done(); recorded, perr = ss.publish(ctx, ev) }()
	go func() {
		defer wg.Done()
		res, uerr = retry(ctx, ss.f, "unfollow "+fl.id, func(ctx context.Context) (workflows.UnfollowResult, error) {
			return ss.s.api.Unfollow(ctx, fl.id, ss.trader)
		})
	}()
	wg.Wait()
	if perr != nil {
		return perr
	}
	if uerr != nil {
		return fmt.Errorf("unfollow %s: %w", fl.id, uerr)
	}
	fl.ended, fl.stopEvent, fl.stopSeq = true, workflows.StopUnfollow, last
	fl.racy[recorded.Seq] = true
	ss.f.note("%s unfollowed (%s) while %s was published: released %s", fl.id, fl.mode, recorded.EventID, res.Released)
	ss.f.UnfollowsInFlight++
	ss.f.Updates++
	if res.Status != workflows.StatusEnded {
		return fmt.Errorf("unfollow %s with %s: status %s, want ended", fl.id, fl.mode, res.Status)
	}
	// R22: asking again moves nothing and answers the same.
	again, err := retry(ctx, ss.f, "unfollow again "+fl.id, func(ctx context.Context) (workflows.UnfollowResult, error) {
		return ss.s.api.Unfollow(ctx, fl.id, ss.trader)
	})
	ss.f.Updates++
	if err != nil {
		return err
	}
	if !again.Released.Equal(res.Released) {
		ss.f.problem("%s unfollowed twice: released %s, then %s", fl.id, res.Released, again.Released)
	}
	return nil
}

// stopLoss sets a stop loss of one cent on a follower who closes at
// market and whose net PnL at mark is a loss of at least that, once it has
// applied every event so far: the relationship stops at once (R20), closes
// every position and releases its fund. Net PnL follows the session's
// random prices, so while no follower is at such a loss the stop loss
// waits for a later step (stopLossDue).
func (ss *session) stopLoss(ctx context.Context) error {
	ss.stopLossDue = true
	var fl *follower
	if len(ss.sent) > 0 {
		last := ss.sent[len(ss.sent)-1].Seq
		lowest := d("-0.01")
		for _, c := range ss.followers {
			if c.ended || c.mode != copytrade.MarketClose || len(c.book) > 0 {
				continue
			}
			if err := ss.waitApplied(ctx, c, last); err != nil {
				return err
			}
			fig, err := retry(ctx, ss.f, "figures of "+c.id, func(ctx context.Context) (copytrade.Figures, error) {
				fig, _, err := ss.s.store.Figures(ctx, c.relID)
				return fig, err
			})
			if err != nil {
				return err
			}
			if fig.NetPnL.LessThanOrEqual(lowest) {
				fl, lowest = c, fig.NetPnL
			}
		}
	}
	if fl == nil {
		ss.f.note("no follower closing at market is a cent down yet: the stop loss waits for a later step")
		_, err := ss.publish(ctx, ss.nextEvent(ctx, ""))
		return err
	}
	ss.stopLossDue = false
	last := ss.sent[len(ss.sent)-1].Seq
	_, err := retry(ctx, ss.f, "stop loss "+fl.id, func(ctx context.Context) (workflows.Settings, error) {
		return ss.s.api.SetStopLoss(ctx, fl.id, ss.trader, workflows.StopLossRequest{StopLoss: d("0.01")})
	})
	ss.f.Updates++
	var fe *copytrade.FieldError
	if errors.As(err, &fe) {
		// A retry after the first attempt went through: the relationship
		// stopped and the update's validator refuses a stopped one.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("stop loss of %s: %w", fl.id, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var res workflows.Result
	if err := ss.s.client.GetWorkflow(wctx, workflows.WorkflowID(fl.id, ss.trader), "").Get(wctx, &res); err != nil {
		return fmt.Errorf("%s did not end after its stop loss: %w", fl.id, err)
	}
	if res.StopReason != workflows.StopLoss {
		return fmt.Errorf("%s ended with reason %q, want %s", fl.id, res.StopReason, workflows.StopLoss)
	}
	fl.ended, fl.stopEvent, fl.stopSeq = true, workflows.StopLoss, last
	ss.f.StopLosses++
	ss.f.note("%s stopped by its stop loss: released %s", fl.id, res.Released)
	return nil
}

// waitApplied waits until the follower's workflow has applied seq.
func (ss *session) waitApplied(ctx context.Context, fl *follower, seq int64) error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := ss.s.api.State(qctx, fl.id, ss.trader)
		cancel()
		if err == nil && v.State.RelationshipID == fl.relID && v.State.LastSeq >= seq && len(v.State.Held) == 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("at seq %d, %d held, status %s", v.State.LastSeq, len(v.State.Held), v.State.Status)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not apply trader event %d within 2 minutes: %v", fl.id, seq, last)
}
