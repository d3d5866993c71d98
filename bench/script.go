package main

import (
	"fmt"

	"github.com/shopspring/decimal"

	"smartcopy/copytrade"
)

// The trader's script: one warm-up open, then per round an ETH open, a BTC
// open that merges into the warm-up's position, a partial BTC close, an
// ETH leverage change and a partial ETH close. Every system (smartcopy and
// the baselines) gets the same script through a trader of its own.

const (
	btc = "BTC-USDT-SWAP"
	eth = "ETH-USDT-SWAP"
)

var (
	traderEquity = decimal.NewFromInt(10000)
	// 500 of 10,000: every open uses 5% of a follower's investment, so
	// funds never run short over many rounds and no copy is refused.
	traderMargin = decimal.NewFromInt(500)
)

// step is one trader event of the script, the same for every system; the
// mark price is set to the trader's fill price before it is published.
type step struct {
	Index    int
	Round    int // 0 is the warm-up
	Kind     copytrade.EventKind
	InstID   string
	Leverage decimal.Decimal
	Price    decimal.Decimal
	Size     decimal.Decimal
}

func (s step) Warmup() bool { return s.Round == 0 }

func (s step) Name() string {
	switch s.Kind {
	case copytrade.EventOpen:
		return fmt.Sprintf("open %s %sx", s.InstID[:3], s.Leverage)
	case copytrade.EventClose:
		return fmt.Sprintf("close %s part", s.InstID[:3])
	default:
		return fmt.Sprintf("leverage %s %sx", s.InstID[:3], s.Leverage)
	}
}

// event is the step as trader traderID publishes it under an id unique to
// the run and the system.
func (s step) event(runID, sysName, traderID string) copytrade.TraderEvent {
	ev := copytrade.TraderEvent{
		EventID:  fmt.Sprintf("%s-%s-e%d", runID, sysName, s.Index),
		TraderID: traderID,
		Kind:     s.Kind,
		InstID:   s.InstID,
		Side:     copytrade.Long,
		Price:    s.Price,
		Size:     s.Size,
		Leverage: s.Leverage,
	}
	if s.Kind == copytrade.EventOpen {
		ev.MarginMode = copytrade.Cross
		ev.Margin = traderMargin
		ev.Equity = traderEquity
	}
	if s.Kind == copytrade.EventClose {
		ev.Leverage = decimal.Zero
	}
	return ev
}

// buildScript writes the steps, tracking the trader's own book so that
// open sizes and close sizes are what a trader would send.
func buildScript(rounds int, inst map[string]copytrade.Instrument) []step {
	size := map[string]decimal.Decimal{btc: decimal.Zero, eth: decimal.Zero}
	lev := map[string]decimal.Decimal{btc: decimal.NewFromInt(5), eth: decimal.NewFromInt(5)}
	var steps []step
	add := func(round int, kind copytrade.EventKind, instID string, fraction decimal.Decimal) {
		k := len(steps)
		price := decimal.NewFromInt(60000 + 150*int64(k))
		if instID == eth {
			price = decimal.NewFromInt(3000 + 10*int64(k))
		}
		s := step{Index: k, Round: round, Kind: kind, InstID: instID, Price: price, Leverage: lev[instID]}
		in := inst[instID]
		switch kind {
		case copytrade.EventOpen:
			budget := traderMargin.Mul(s.Leverage)
			s.Size = copytrade.FloorToLot(budget.Div(price.Mul(in.CtVal)), in.LotSize)
			size[instID] = size[instID].Add(s.Size)
		case copytrade.EventClose:
			s.Size = copytrade.FloorToLot(size[instID].Mul(fraction), in.LotSize)
			size[instID] = size[instID].Sub(s.Size)
		case copytrade.EventLeverage:
			if lev[instID].Equal(decimal.NewFromInt(5)) {
				lev[instID] = decimal.NewFromInt(10)
			} else {
				lev[instID] = decimal.NewFromInt(5)
			}
			s.Leverage = lev[instID]
		}
		steps = append(steps, s)
	}
	add(0, copytrade.EventOpen, btc, decimal.Zero)
	third, half := decimal.NewFromInt(1).Div(decimal.NewFromInt(3)), decimal.NewFromFloat(0.5)
	for r := 1; r <= rounds; r++ {
		add(r, copytrade.EventOpen, eth, decimal.Zero)
		add(r, copytrade.EventOpen, btc, decimal.Zero)
		add(r, copytrade.EventClose, btc, third)
		add(r, copytrade.EventLeverage, eth, decimal.Zero)
		add(r, copytrade.EventClose, eth, half)
	}
	return steps
}

// follower is one follower of one system's trader, with the positions the
// bench expects its relationship to hold (the model).
type follower struct {
	ID             string
	RelationshipID string
	WorkflowID     string
	Investment     decimal.Decimal
	pos            map[copytrade.PositionKey]*modelPos
}

type modelPos struct {
	Size     decimal.Decimal
	Leverage decimal.Decimal
}

// population is one system's trader and followers.
type population struct {
	System    string
	TraderID  string
	Followers []*follower
	byRel     map[string]*follower
}

func newPopulation(runID, sysName string, n int) *population {
	p := &population{System: sysName, TraderID: fmt.Sprintf("%s-%s-trader", runID, sysName), byRel: map[string]*follower{}}
	for i := range n {
		p.Followers = append(p.Followers, &follower{
			ID: fmt.Sprintf("%s-%s-f%d", runID, sysName, i),
			// 100 to 1,999 USDT, so sizes differ and some opens are
			// lifted to the minimum size (R7).
			Investment: decimal.NewFromInt(100 + int64(i*37%1900)),
			pos:        map[copytrade.PositionKey]*modelPos{},
		})
	}
	return p
}

// expectation is what one relationship's copy of an event must look like:
// an orders row (opens, closes) or a risk_syncs row (leverage) of this
// size and status.
type expectation struct {
	Size   decimal.Decimal
	Margin decimal.Decimal // opens only
	Status string
}

// expect applies the sizing rules to every follower for the event as
// recorded (with the trader's size before a close), independently of the
// code under test except for copytrade's pure arithmetic, and advances the
// model. Followers whose copy rounds to nothing are left out: they get no
// row (R13 and CopyClose's rounds_to_zero).
func (p *population) expect(ev copytrade.TraderEvent, inst copytrade.Instrument, mark decimal.Decimal) (map[string]expectation, error) {
	out := make(map[string]expectation, len(p.Followers))
	for _, f := range p.Followers {
		pos := f.pos[ev.Key()]
		if pos == nil {
			pos = &modelPos{}
			f.pos[ev.Key()] = pos
		}
		switch ev.Kind {
		case copytrade.EventOpen:
			plan, rej := copytrade.PlanOpen(inst, copytrade.OpenInputs{
				TraderMargin: ev.Margin, TraderEquity: ev.Equity, Leverage: ev.Leverage,
				MarginMode: ev.MarginMode, Investment: f.Investment, Price: mark,
			})
			if rej != nil {
				return nil, fmt.Errorf("the script's open %s is refused for %s: %s", ev.EventID, f.ID, rej.Reason)
			}
			out[f.RelationshipID] = expectation{Size: plan.Size, Margin: plan.Margin, Status: "filled"}
			pos.Size = pos.Size.Add(plan.Size)
			pos.Leverage = ev.Leverage
		case copytrade.EventClose:
			size := copytrade.CloseSize(pos.Size, ev.Size, ev.SizeBefore, inst.LotSize)
			if size.IsZero() {
				continue
			}
			out[f.RelationshipID] = expectation{Size: size, Status: "filled"}
			pos.Size = pos.Size.Sub(size)
		case copytrade.EventLeverage:
			status := "applied"
			switch {
			case !pos.Size.IsPositive():
				status = "skipped"
			case pos.Leverage.Equal(ev.Leverage):
				status = "skipped"
			default:
				pos.Leverage = ev.Leverage
			}
			out[f.RelationshipID] = expectation{Status: status}
		}
	}
	return out, nil
}
