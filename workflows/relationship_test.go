package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"smartcopy/activities"
	"smartcopy/copytrade"
	"smartcopy/venue"
	"smartcopy/workflows"
)

var a *activities.Activities

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// RelationshipSuite drives the relationship workflow with mocked activities:
// it shows the state machine and the message handling, not the money
// (the store, venue and end-to-end tests show that).
type RelationshipSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	cfg workflows.Config
	// applied lists the trader event ids the activities were asked to copy,
	// in order.
	applied []string
	// notified lists the kinds of notifications sent, in order.
	notified []string
	updates  int
}

func TestRelationship(t *testing.T) { suite.Run(t, new(RelationshipSuite)) }

func (s *RelationshipSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.cfg = workflows.DefaultConfig()
	s.cfg.GapHoldBack = 10 * time.Second
	wf := &workflows.Workflows{Config: s.cfg}
	s.env.RegisterWorkflowWithOptions(wf.CopyRelationship, workflow.RegisterOptions{Name: workflows.WorkflowName})
	s.env.RegisterActivity(&activities.Activities{})
	s.applied = nil
	s.env.OnActivity(a.SetStatus, mock.Anything, mock.Anything).Return(nil).Maybe()
	// PostgreSQL has recorded nothing beyond what was signalled, unless a
	// test says otherwise.
	s.env.OnActivity(a.TraderEvents, mock.Anything, mock.Anything).Return([]copytrade.TraderEvent(nil), nil).Maybe()
	s.notified = nil
	s.env.OnActivity(a.Notify, mock.Anything, mock.Anything).Return(func(_ context.Context, n activities.NotifyInput) error {
		s.notified = append(s.notified, n.Kind)
		return nil
	}).Maybe()
	s.env.OnActivity(a.Follow, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FollowInput) (activities.FollowOutput, error) {
			return activities.FollowOutput{TraderSeq: 0, TraderEquity: "10000", Fund: fund(in.Request.Investment.String(), "0", "0", "0")}, nil
		}).Maybe()
}

func (s *RelationshipSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

// fund builds a Fund with equity investment + realized - fees and the given
// unrealized PnL, holding one BTC long when used > 0.
func fund(investment, realized, fees, used string) activities.Fund {
	f := copytrade.Fund{Investment: d(investment), RealizedPnL: d(realized), Fees: d(fees)}
	var pos []copytrade.Position
	if d(used).IsPositive() {
		pos = []copytrade.Position{{InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Size: d("0.83"), AvgPrice: d("60000"),
			Leverage: d("5"), MarginMode: copytrade.Cross, Margin: d(used)}}
	}
	fig := copytrade.FundFigures(f, pos, nil, nil)
	return activities.Fund{Figures: fig, Positions: pos}
}

func withNet(f activities.Fund, net string) activities.Fund {
	f.Figures.NetPnL = d(net)
	return f
}

func openEvent(seq int64) copytrade.TraderEvent {
	return copytrade.TraderEvent{
		EventID: "e" + decimal.NewFromInt(seq).String(), TraderID: "t1", Seq: seq, Kind: copytrade.EventOpen,
		InstID: "BTC-USDT-SWAP", Side: copytrade.Long, MarginMode: copytrade.Cross,
		Leverage: d("5"), Margin: d("1000"), Equity: d("10000"), Price: d("60000"), Size: d("8.33"),
	}
}

func closeEvent(seq int64) copytrade.TraderEvent {
	return copytrade.TraderEvent{
		EventID: "e" + decimal.NewFromInt(seq).String(), TraderID: "t1", Seq: seq, Kind: copytrade.EventClose,
		InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Price: d("61000"), Size: d("8.33"), SizeBefore: d("8.33"),
	}
}

func followReq(investment string) copytrade.FollowRequest {
	return copytrade.FollowRequest{FollowerID: "alice", TraderID: "t1", Investment: d(investment)}
}

// mockOpens makes CopyOpen fill and record the event id; the fund after it
// is given by after.
func (s *RelationshipSuite) mockOpens(after activities.Fund) {
	s.env.OnActivity(a.CopyOpen, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.OpenInput) (activities.OrderOutcome, error) {
			s.applied = append(s.applied, in.Event.EventID)
			return activities.OrderOutcome{Placed: true, Fill: venue.Fill{Status: venue.Filled, Size: d("0.83"), Price: d("60000")}, Fund: after}, nil
		})
}

func (s *RelationshipSuite) mockCloses(after activities.Fund) {
	s.env.OnActivity(a.CopyClose, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CloseInput) (activities.OrderOutcome, error) {
			s.applied = append(s.applied, in.Event.EventID)
			return activities.OrderOutcome{Placed: true, Fund: after}, nil
		})
}

func (s *RelationshipSuite) update(at time.Duration, name string, cb *testsuite.TestUpdateCallback, args ...any) {
	s.updates++
	id := fmt.Sprintf("%s-%d", name, s.updates)
	s.env.RegisterDelayedCallback(func() { s.env.UpdateWorkflow(name, id, cb, args...) }, at)
}

func (s *RelationshipSuite) signal(at time.Duration, ev copytrade.TraderEvent) {
	s.env.RegisterDelayedCallback(func() { s.env.SignalWorkflow(workflows.SignalTraderEvent, ev) }, at)
}

type outcome struct {
	accepted bool
	err      error
	value    any
}

func record(o *outcome) *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept:   func() { o.accepted = true },
		OnReject:   func(err error) { o.err = err },
		OnComplete: func(v any, err error) { o.value, o.err = v, err },
	}
}

func (s *RelationshipSuite) run() workflows.Result {
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.True(s.env.IsWorkflowCompleted())
	s.NoError(s.env.GetWorkflowError())
	var res workflows.Result
	s.NoError(s.env.GetWorkflowResult(&res))
	return res
}

func (s *RelationshipSuite) state() workflows.State {
	v, err := s.env.QueryWorkflow(workflows.QueryState)
	s.Require().NoError(err)
	var view workflows.View
	s.Require().NoError(v.Get(&view))
	return view.State
}

// R1, R2, R6, R12, R19, R22: follow, copy an open, copy a close, unfollow;
// the relationship ends with the fund released.
func (s *RelationshipSuite) TestFollowOpenCloseUnfollow_R1_R12_R22() {
	s.mockOpens(fund("1000", "0", "0.249", "99.6"))
	s.mockCloses(fund("1000", "8.3", "0.5", "0"))
	s.env.OnActivity(a.CloseAll, mock.Anything, mock.Anything).Return(activities.CloseAllOutcome{Fund: fund("1000", "8.3", "0.5", "0")}, nil).Once()
	s.env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(d("1007.8"), nil).Once()
	var followed, unfollowed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	s.signal(time.Second, openEvent(1))
	s.signal(2*time.Second, closeEvent(2))
	s.env.RegisterDelayedCallback(func() {
		st := s.state()
		s.Equal(workflows.StatusActive, st.Status)
		s.Equal(int64(2), st.LastSeq)
		s.Equal(int64(2), st.Counters.OrdersFilled)
	}, 3*time.Second)
	s.update(4*time.Second, workflows.UpdateUnfollow, record(&unfollowed))
	res := s.run()
	s.NoError(followed.err)
	s.Equal(workflows.StatusActive, followed.value.(workflows.FollowResult).Status)
	s.NoError(unfollowed.err)
	s.Equal(workflows.StatusEnded, unfollowed.value.(workflows.UnfollowResult).Status)
	s.Equal([]string{"e1", "e2"}, s.applied)
	s.Equal(workflows.StatusEnded, res.Status)
	s.Equal(workflows.StopUnfollow, res.StopReason)
	s.Equal("1007.8", res.Released.String())
}

// R24: the same event twice is applied once; events that arrive out of order
// are applied in the trader's order.
func (s *RelationshipSuite) TestDuplicatesAndOrder_R24() {
	s.mockOpens(fund("1000", "0", "0.249", "99.6"))
	s.mockCloses(fund("1000", "0", "0.5", "0"))
	var followed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	s.signal(time.Second, openEvent(2))
	s.signal(time.Second+time.Millisecond, closeEvent(3))
	s.signal(2*time.Second, openEvent(1))
	s.signal(3*time.Second, openEvent(1))
	s.signal(3*time.Second, openEvent(2))
	s.env.RegisterDelayedCallback(func() {
		st := s.state()
		s.Equal(int64(3), st.LastSeq)
		s.Equal(int64(2), st.Counters.Duplicates)
		s.Equal(int64(3), st.Counters.EventsApplied)
		s.env.CancelWorkflow()
	}, 4*time.Second)
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.Equal([]string{"e1", "e2", "e3"}, s.applied)
}

// R24: a gap is held back for GapHoldBack, then skipped and recorded; the
// missing event arriving later is dropped as late.
func (s *RelationshipSuite) TestGapIsSkippedAfterHoldBack_R24() {
	s.mockOpens(fund("1000", "0", "0.249", "99.6"))
	var followed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	s.signal(time.Second, openEvent(2))
	s.env.RegisterDelayedCallback(func() {
		s.Empty(s.applied, "event 2 must wait for event 1")
	}, 5*time.Second)
	s.signal(20*time.Second, openEvent(1))
	s.env.RegisterDelayedCallback(func() {
		st := s.state()
		s.Equal(int64(1), st.Counters.GapsSkipped)
		s.Equal(int64(1), st.Counters.Late)
		s.Equal([]int64{1}, st.Skipped)
		s.env.CancelWorkflow()
	}, 21*time.Second)
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.Equal([]string{"e2"}, s.applied)
}

// R24: each gap is held back for the whole GapHoldBack, counted from when
// that gap opened. The timer of an earlier gap, filled long ago, must not
// cut a later gap short (the fault suite lost an order this way).
func (s *RelationshipSuite) TestEachGapGetsItsOwnHoldBack_R24() {
	s.mockOpens(fund("1000", "0", "0.249", "99.6"))
	var followed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	// A gap at 1 s, filled at 2 s: its hold-back would have ended at 11 s.
	s.signal(time.Second, openEvent(2))
	s.signal(2*time.Second, openEvent(1))
	// A second gap opens at 10.5 s and is filled at 12 s, 1.5 s later.
	s.signal(10*time.Second+500*time.Millisecond, openEvent(4))
	s.signal(12*time.Second, openEvent(3))
	s.env.RegisterDelayedCallback(func() {
		st := s.state()
		s.Equal(int64(0), st.Counters.GapsSkipped, "the second gap was skipped by the first gap's timer")
		s.Equal(int64(0), st.Counters.Late)
		s.Equal(int64(4), st.LastSeq)
		s.env.CancelWorkflow()
	}, 13*time.Second)
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.Equal([]string{"e1", "e2", "e3", "e4"}, s.applied)
}

// A database outage longer than a local activity's 30 s: the copy's local
// attempts run out, and it goes on as a regular activity until the
// database is back. The order is placed, not given up (the fault suite
// lost orders this way).
func (s *RelationshipSuite) TestCopyOutlastsALongOutage() {
	var followed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	down, attempts := true, 0
	s.env.OnActivity(a.CopyOpen, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.OpenInput) (activities.OrderOutcome, error) {
			attempts++
			if down {
				return activities.OrderOutcome{}, errors.New("connect to PostgreSQL: database is not accepting connections")
			}
			s.applied = append(s.applied, in.Event.EventID)
			return activities.OrderOutcome{Placed: true, Fund: fund("1000", "0", "0.249", "99.6")}, nil
		})
	s.signal(time.Second, openEvent(1))
	// Down for 50 s: past the local attempts' 30 s. (The test environment
	// caps a regular activity at 10 attempts, about 33 s more.)
	s.env.RegisterDelayedCallback(func() { down = false }, 50*time.Second)
	s.env.RegisterDelayedCallback(func() {
		st := s.state()
		s.Equal(int64(1), st.LastSeq)
		s.Equal(int64(1), st.Counters.OrdersFilled)
		s.Equal(int64(0), st.Counters.OrdersFailed, "the copy was given up: %+v", st.RecentOrders)
		s.env.CancelWorkflow()
	}, 70*time.Second)
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.Equal([]string{"e1"}, s.applied)
	s.Greater(attempts, 10)
}

// R3, R25: a bad follow is rejected by the validator: no activity runs and
// the run, having no follow, is abandoned.
func (s *RelationshipSuite) TestFollowValidation_R3_R25() {
	cases := []struct {
		name  string
		req   copytrade.FollowRequest
		field string
	}{
		{"below minimum", followReq("99.99"), "investment"},
		{"negative", followReq("-5"), "investment"},
		{"yourself", copytrade.FollowRequest{FollowerID: "t1", TraderID: "t1", Investment: d("1000")}, "trader_id"},
		{"bad stop mode", copytrade.FollowRequest{FollowerID: "alice", TraderID: "t1", Investment: d("1000"), StopMode: "later"}, "stop_mode"},
		{"negative stop loss", copytrade.FollowRequest{FollowerID: "alice", TraderID: "t1", Investment: d("1000"), StopLoss: d("-1")}, "stop_loss"},
	}
	results := make([]outcome, len(cases))
	for i, c := range cases {
		s.update(time.Duration(i)*time.Millisecond, workflows.UpdateFollow, record(&results[i]), c.req)
	}
	res := s.run()
	s.Equal(workflows.StatusAbandoned, res.Status)
	for i, c := range cases {
		s.False(results[i].accepted, c.name)
		s.Error(results[i].err, c.name)
		if results[i].err != nil {
			s.True(strings.HasPrefix(results[i].err.Error(), c.field+": "), "%s: %v", c.name, results[i].err)
		}
	}
}

// R3: a second follow of the same trader meets the running relationship and
// is refused; the first goes on.
func (s *RelationshipSuite) TestSecondFollowRefused_R3_R4() {
	var first, second outcome
	s.update(0, workflows.UpdateFollow, record(&first), followReq("1000"))
	s.update(time.Second, workflows.UpdateFollow, record(&second), followReq("2000"))
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 2*time.Second)
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.NoError(first.err)
	s.False(second.accepted)
	s.ErrorContains(second.err, "trader_id: alice already follows t1")
}

// R2: a follow the database refuses (balance short) ends the run as
// refused, and the refusal names the field.
func (s *RelationshipSuite) TestFollowRefusedByDatabase_R2() {
	env := s.NewTestWorkflowEnvironment()
	wf := &workflows.Workflows{Config: s.cfg}
	env.RegisterWorkflowWithOptions(wf.CopyRelationship, workflow.RegisterOptions{Name: workflows.WorkflowName})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.Follow, mock.Anything, mock.Anything).Return(activities.FollowOutput{},
		activities.Refused(&copytrade.FieldError{Field: "investment", Reason: "available balance 50 USDT is less than 1000"}))
	var followed outcome
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(workflows.UpdateFollow, "f", record(&followed), followReq("1000")) }, 0)
	env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.True(env.IsWorkflowCompleted())
	var res workflows.Result
	s.NoError(env.GetWorkflowResult(&res))
	s.Equal(workflows.StatusRefused, res.Status)
	var fe *copytrade.FieldError
	s.True(errors.As(followed.err, &fe) || strings.HasPrefix(followed.err.Error(), "investment: "), "%v", followed.err)
}

// R20, R1 market_close: a fill that takes net PnL to the stop loss stops the
// relationship, closes everything at market and releases the fund.
func (s *RelationshipSuite) TestStopLossMarketClose_R20() {
	s.mockOpens(withNet(fund("1000", "0", "0.249", "99.6"), "-150"))
	s.env.OnActivity(a.CloseAll, mock.Anything, mock.MatchedBy(func(in activities.CloseAllInput) bool {
		return in.Reason == workflows.StopLoss
	})).Return(activities.CloseAllOutcome{Fund: fund("1000", "-150", "0.5", "0")}, nil).Once()
	s.env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(d("849.5"), nil).Once()
	req := followReq("1000")
	req.StopLoss = d("100")
	var followed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), req)
	s.signal(time.Second, openEvent(1))
	res := s.run()
	s.Equal(workflows.StatusEnded, res.Status)
	s.Equal(workflows.StopLoss, res.StopReason)
	s.Equal("849.5", res.Released.String())
}

// R1 copy_close: after the stop nothing new opens; closes still follow the
// trader, and the fund is released once flat.
func (s *RelationshipSuite) TestStopCopyClose_R1_R22() {
	s.mockOpens(fund("1000", "0", "0.249", "99.6"))
	s.mockCloses(fund("1000", "5", "0.5", "0"))
	s.env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(d("1004.5"), nil).Once()
	req := followReq("1000")
	req.StopMode = copytrade.CopyClose
	var followed, unfollowed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), req)
	s.signal(time.Second, openEvent(1))
	s.update(2*time.Second, workflows.UpdateUnfollow, record(&unfollowed))
	s.signal(3*time.Second, openEvent(2))
	s.env.RegisterDelayedCallback(func() {
		s.Equal(workflows.StatusStopping, s.state().Status)
	}, 4*time.Second)
	s.signal(5*time.Second, closeEvent(3))
	res := s.run()
	s.Equal(workflows.StatusStopping, unfollowed.value.(workflows.UnfollowResult).Status)
	s.Equal([]string{"e1", "e3"}, s.applied, "the open after unfollow is not copied")
	s.Equal(workflows.StatusEnded, res.Status)
	s.Equal("1004.5", res.Released.String())
}

// R1 manual_close: positions go to the follower's own account and the rest
// of the fund is released at once.
func (s *RelationshipSuite) TestStopManualClose_R1() {
	s.mockOpens(fund("1000", "0", "0.249", "99.6"))
	s.env.OnActivity(a.HandOver, mock.Anything, mock.Anything).Return(fund("1000", "0", "0.249", "0"), nil).Once()
	s.env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(d("900.151"), nil).Once()
	req := followReq("1000")
	req.StopMode = copytrade.ManualClose
	var followed, unfollowed outcome
	s.update(0, workflows.UpdateFollow, record(&followed), req)
	s.signal(time.Second, openEvent(1))
	s.update(2*time.Second, workflows.UpdateUnfollow, record(&unfollowed))
	res := s.run()
	s.Equal(workflows.StatusEnded, res.Status)
	s.Equal("900.151", res.Released.String())
}

// R22: unfollow asked twice answers the same way and releases once.
func (s *RelationshipSuite) TestUnfollowTwice_R22() {
	s.env.OnActivity(a.CloseAll, mock.Anything, mock.Anything).Return(activities.CloseAllOutcome{Fund: fund("1000", "0", "0", "0")}, nil).Once()
	s.env.OnActivity(a.Release, mock.Anything, mock.Anything).Return(d("1000"), nil).Once()
	var followed, first, second outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	s.update(time.Second, workflows.UpdateUnfollow, record(&first))
	s.update(time.Second, workflows.UpdateUnfollow, record(&second))
	s.run()
	s.NoError(first.err)
	s.NoError(second.err)
	s.Equal(workflows.StatusEnded, second.value.(workflows.UnfollowResult).Status)
}

// R15, R18: a leverage sync the fund cannot cover is recorded and notified;
// raising the investment tries it again.
func (s *RelationshipSuite) TestLeverageShortfallRetriedOnRaise_R15_R18() {
	s.mockOpens(fund("1000", "0", "0.249", "99.6"))
	attempts := 0
	s.env.OnActivity(a.SyncLeverage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SyncInput) (activities.SyncOutcome, error) {
			attempts++
			if attempts == 1 {
				return activities.SyncOutcome{Result: venue.SyncResult{Status: venue.SyncFailed, Reason: copytrade.ReasonInsufficientFunds}}, nil
			}
			s.Contains(in.Key, "/retry-")
			return activities.SyncOutcome{Result: venue.SyncResult{Status: venue.SyncApplied}, Fund: fund("1500", "0", "0.249", "300")}, nil
		}).Times(2)
	s.env.OnActivity(a.ChangeInvestment, mock.Anything, mock.Anything).Return(fund("1500", "0", "0.249", "99.6"), nil).Once()
	var followed, raised outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	s.signal(time.Second, openEvent(1))
	lev := copytrade.TraderEvent{EventID: "e2", TraderID: "t1", Seq: 2, Kind: copytrade.EventLeverage, InstID: "BTC-USDT-SWAP", Side: copytrade.Long, Leverage: d("1")}
	s.signal(2*time.Second, lev)
	s.env.RegisterDelayedCallback(func() { s.Len(s.state().PendingSyncs, 1) }, 3*time.Second)
	s.update(4*time.Second, workflows.UpdateChangeInvestment, record(&raised), workflows.InvestmentRequest{Direction: workflows.Raise, Amount: d("500")})
	s.env.RegisterDelayedCallback(func() {
		s.Empty(s.state().PendingSyncs)
		s.env.CancelWorkflow()
	}, 5*time.Second)
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.NoError(raised.err)
	s.Equal(2, attempts)
	s.Equal([]string{activities.NotifySyncFailed}, s.notified, "R23: the failed sync is notified once")
}

// R18, R25: lowering below the minimum or above the available amount, and
// a bad direction, are rejected before anything runs.
func (s *RelationshipSuite) TestInvestmentValidation_R18_R25() {
	var followed, tooLow, tooMuch, badDir, zero outcome
	s.update(0, workflows.UpdateFollow, record(&followed), followReq("1000"))
	s.update(time.Second, workflows.UpdateChangeInvestment, record(&tooLow), workflows.InvestmentRequest{Direction: workflows.Lower, Amount: d("950")})
	s.update(time.Second, workflows.UpdateChangeInvestment, record(&tooMuch), workflows.InvestmentRequest{Direction: workflows.Lower, Amount: d("1000.01")})
	s.update(time.Second, workflows.UpdateChangeInvestment, record(&badDir), workflows.InvestmentRequest{Direction: "double", Amount: d("1")})
	s.update(time.Second, workflows.UpdateChangeInvestment, record(&zero), workflows.InvestmentRequest{Direction: workflows.Raise, Amount: d("0")})
	s.env.RegisterDelayedCallback(func() { s.env.CancelWorkflow() }, 2*time.Second)
	s.env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.ErrorContains(tooLow.err, "amount: would leave 50 USDT invested")
	s.ErrorContains(tooMuch.err, "amount: can release at most")
	s.ErrorContains(badDir.err, "direction: must be raise or lower")
	s.ErrorContains(zero.err, "amount: must be a positive amount")
	s.False(tooLow.accepted || tooMuch.accepted || badDir.accepted || zero.accepted)
}

// Bounded history: when the history grows past HistoryLimit the run
// continues as new, carrying the state (watermark, counters) with it.
func (s *RelationshipSuite) TestContinuesAsNewWithState() {
	env := s.NewTestWorkflowEnvironment()
	cfg := s.cfg
	cfg.HistoryLimit = 40
	wf := &workflows.Workflows{Config: cfg}
	env.RegisterWorkflowWithOptions(wf.CopyRelationship, workflow.RegisterOptions{Name: workflows.WorkflowName})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.SetStatus, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(a.Follow, mock.Anything, mock.Anything).Return(activities.FollowOutput{Fund: fund("1000", "0", "0", "0")}, nil)
	env.OnActivity(a.CopyOpen, mock.Anything, mock.Anything).Return(activities.OrderOutcome{Placed: true, Fund: fund("1000", "0", "0.249", "99.6")}, nil)
	var followed outcome
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(workflows.UpdateFollow, "f", record(&followed), followReq("1000")) }, 0)
	for i := int64(1); i <= 30; i++ {
		ev := openEvent(i)
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalTraderEvent, ev) }, time.Duration(i)*time.Second)
	}
	// The test environment keeps no real history; tell it the length.
	env.RegisterDelayedCallback(func() { env.SetCurrentHistoryLength(41) }, 10*time.Second+time.Millisecond)
	env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.True(env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	s.Require().True(errors.As(env.GetWorkflowError(), &can), "%v", env.GetWorkflowError())
	var in workflows.Input
	s.Require().NoError(converter.GetDefaultDataConverter().FromPayloads(can.Input, &in))
	s.Require().NotNil(in.State)
	s.Equal(workflows.StatusActive, in.State.Status)
	s.Equal(int64(1), in.State.Counters.ContinuedAsNew)
	s.Positive(in.State.LastSeq)
	s.Equal(in.State.LastSeq, in.State.Counters.EventsApplied)
}

// openingEnv is a test environment of its own whose relationship follows
// with 1,000 USDT and fills every open; applied lists the trader sequence
// numbers it copied, in order.
func (s *RelationshipSuite) openingEnv() (*testsuite.TestWorkflowEnvironment, *[]int64) {
	env := s.NewTestWorkflowEnvironment()
	wf := &workflows.Workflows{Config: s.cfg}
	env.RegisterWorkflowWithOptions(wf.CopyRelationship, workflow.RegisterOptions{Name: workflows.WorkflowName})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(a.SetStatus, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(a.Follow, mock.Anything, mock.Anything).Return(activities.FollowOutput{Fund: fund("1000", "0", "0", "0")}, nil)
	applied := new([]int64)
	env.OnActivity(a.CopyOpen, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.OpenInput) (activities.OrderOutcome, error) {
			*applied = append(*applied, in.Event.Seq)
			return activities.OrderOutcome{Placed: true, Fund: fund("1000", "0", "0.249", "99.6")}, nil
		})
	return env, applied
}

// R24: a gap is filled at once from the events recorded in PostgreSQL (the
// publisher records every event before signalling it), instead of waiting
// out the hold-back and skipping it.
func (s *RelationshipSuite) TestGapFilledFromRecordedEvents_R24() {
	env, applied := s.openingEnv()
	env.OnActivity(a.TraderEvents, mock.Anything, activities.TraderEventsInput{TraderID: "t1", AfterSeq: 0, Limit: 256}).
		Return([]copytrade.TraderEvent{openEvent(1), openEvent(2)}, nil).Once()
	var followed outcome
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(workflows.UpdateFollow, "f", record(&followed), followReq("1000")) }, 0)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalTraderEvent, openEvent(2)) }, time.Second)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryState)
		s.Require().NoError(err)
		var view workflows.View
		s.Require().NoError(v.Get(&view))
		s.Equal(int64(2), view.State.LastSeq, "the gap was filled without waiting out the hold-back")
		s.Equal(int64(0), view.State.Counters.GapsSkipped)
		env.CancelWorkflow()
	}, 2*time.Second)
	env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.Equal([]int64{1, 2}, *applied)
	env.AssertExpectations(s.T())
}

// R24: when more events arrive ahead of a missing one than the state
// holds, the held ones are those nearest the watermark. Here the trader's
// events 101-400 are recorded and arrive before 1-100 (two publishers
// racing): the state, full of 101-356, must make room for 1-100 as they
// arrive rather than drop them, or it waits on a gap only its own state
// has, and at last skips events PostgreSQL holds.
func (s *RelationshipSuite) TestFullStateHoldsNearestEvents_R24() {
	const last = 400
	env, applied := s.openingEnv()
	// PostgreSQL has every event published so far.
	var mu sync.Mutex
	recorded := map[int64]bool{}
	env.OnActivity(a.TraderEvents, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TraderEventsInput) ([]copytrade.TraderEvent, error) {
			mu.Lock()
			defer mu.Unlock()
			var evs []copytrade.TraderEvent
			for seq := in.AfterSeq + 1; seq <= last && len(evs) < in.Limit; seq++ {
				if recorded[seq] {
					evs = append(evs, openEvent(seq))
				}
			}
			return evs, nil
		})
	publish := func(from, to int64) {
		for seq := from; seq <= to; seq++ {
			mu.Lock()
			recorded[seq] = true
			mu.Unlock()
			env.SignalWorkflow(workflows.SignalTraderEvent, openEvent(seq))
		}
	}
	var followed outcome
	env.RegisterDelayedCallback(func() { env.UpdateWorkflow(workflows.UpdateFollow, "f", record(&followed), followReq("1000")) }, 0)
	env.RegisterDelayedCallback(func() { publish(101, last) }, time.Second)
	env.RegisterDelayedCallback(func() { publish(1, 100) }, 2*time.Second)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryState)
		s.Require().NoError(err)
		var view workflows.View
		s.Require().NoError(v.Get(&view))
		s.Equal(int64(last), view.State.LastSeq)
		s.Equal(int64(0), view.State.Counters.GapsSkipped, "events PostgreSQL has were skipped as missing")
		s.Positive(view.State.Counters.DeferredToStore, "the state never filled: the test shows nothing")
		env.CancelWorkflow()
	}, time.Minute)
	env.ExecuteWorkflow(workflows.WorkflowName, workflows.Input{FollowerID: "alice", TraderID: "t1"})
	s.Require().Len(*applied, last)
	for i, seq := range *applied {
		s.Require().Equal(int64(i+1), seq, "applied out of the trader's order")
	}
}
