package workflows

import (
	"time"

	"github.com/shopspring/decimal"

	"smartcopy/activities"
	"smartcopy/copytrade"
)

// Config is the workflow's tunable behaviour. The worker sets it; a
// relationship captures it at follow time into its State, so a change of
// configuration never changes how a running relationship replays.
type Config struct {
	Rules copytrade.Rules `json:"rules"`
	// GapHoldBack is how long an event that arrived ahead of a missing one
	// is held back before the gap is skipped (R24).
	GapHoldBack time.Duration `json:"gap_hold_back"`
	// HistoryLimit continues-as-new once a run's history passes this many
	// events, even if the server has not suggested it yet; 0 leaves it to
	// the server's suggestion.
	HistoryLimit int `json:"history_limit"`
	// FollowTimeout is how long a run that was started without a follow
	// (by a stray trader event) waits for one before it ends.
	FollowTimeout time.Duration `json:"follow_timeout"`
}

// DefaultConfig is SPEC.md's rules with the workflow's defaults.
func DefaultConfig() Config {
	return Config{
		Rules:       copytrade.DefaultRules(),
		GapHoldBack: 30 * time.Second,
		// Below the server's default suggestion (4,096 events), so a long
		// burst continues as new before the server has to suggest it.
		HistoryLimit:  3000,
		FollowTimeout: time.Minute,
	}
}

// Settings are what the follower chose (R1); copy mode never changes (R4).
type Settings struct {
	Investment   decimal.Decimal    `json:"investment"`
	CopyExisting bool               `json:"copy_existing"`
	StopLoss     decimal.Decimal    `json:"stop_loss"`
	StopMode     copytrade.StopMode `json:"stop_mode"`
}

// PendingSync is a leverage or margin sync that failed for lack of funds; it
// is tried again when the follower adds funds (R15, R16).
type PendingSync struct {
	Event    copytrade.TraderEvent `json:"event"`
	Attempts int                   `json:"attempts"`
}

// OrderNote is a short line about a recent copy, for the query and the UI.
type OrderNote struct {
	EventID string          `json:"event_id"`
	Kind    string          `json:"kind"`
	InstID  string          `json:"inst_id"`
	Side    copytrade.Side  `json:"side"`
	Result  string          `json:"result"`
	Size    decimal.Decimal `json:"size,omitzero"`
	Price   decimal.Decimal `json:"price,omitzero"`
}

// Counters say what the relationship has seen; the exactly-once tests read
// them.
type Counters struct {
	EventsApplied int64 `json:"events_applied"`
	Duplicates    int64 `json:"duplicates"`
	Invalid       int64 `json:"invalid"`
	GapsSkipped   int64 `json:"gaps_skipped"`
	// DeferredToStore counts events received far ahead of the next one to
	// apply, dropped from the state and read back from PostgreSQL later.
	DeferredToStore int64 `json:"deferred_to_store"`
	Late            int64 `json:"late"`
	OrdersFilled    int64 `json:"orders_filled"`
	OrdersFailed    int64 `json:"orders_failed"`
	ContinuedAsNew  int64 `json:"continued_as_new"`
}

// State is everything a relationship is, in one serializable struct that
// crosses continue-as-new.
type State struct {
	RelationshipID string               `json:"relationship_id"`
	FollowerID     string               `json:"follower_id"`
	TraderID       string               `json:"trader_id"`
	Status         Status               `json:"status"`
	StopReason     string               `json:"stop_reason,omitempty"`
	Settings       Settings             `json:"settings"`
	Config         Config               `json:"config"`
	Fund           activities.Fund      `json:"fund"`
	Released       decimal.Decimal      `json:"released,omitzero"`
	CopiedExisting bool                 `json:"copied_existing"`
	TraderBook     []copytrade.Position `json:"trader_book,omitempty"`
	TraderEquity   decimal.Decimal      `json:"trader_equity,omitzero"`

	// LastSeq is the trader's sequence number of the last event applied:
	// an event at or below it is a duplicate (R24).
	LastSeq int64 `json:"last_seq"`
	// Held are events that arrived ahead of a missing one, by sequence.
	Held map[int64]copytrade.TraderEvent `json:"held,omitempty"`
	// Behind says events beyond the held ones were dropped to keep the
	// state small (at most maxHeld held); they are read back from
	// PostgreSQL, where every published event is recorded.
	Behind bool `json:"behind,omitempty"`
	// GapSince is when the oldest held-back gap was first seen.
	GapSince time.Time `json:"gap_since,omitzero"`
	// Skipped are sequence numbers given up on after GapHoldBack (the
	// latest few), so a late arrival is told apart from a duplicate.
	Skipped []int64 `json:"skipped,omitempty"`

	PendingSyncs      []PendingSync `json:"pending_syncs,omitempty"`
	InvestmentChanges int           `json:"investment_changes"`
	RecentOrders      []OrderNote   `json:"recent_orders,omitempty"`
	RiskCheckPending  bool          `json:"risk_check_pending,omitempty"`
	Counters          Counters      `json:"counters"`
}

// maxRecent bounds the recent orders and skipped sequence numbers kept in
// state: the full record is in PostgreSQL.
const maxRecent = 10

func (s *State) rel() activities.RelRef {
	return activities.RelRef{
		RelationshipID: s.RelationshipID,
		WorkflowID:     WorkflowID(s.FollowerID, s.TraderID),
		FollowerID:     s.FollowerID,
		TraderID:       s.TraderID,
	}
}

// holds reports whether the fund, as last read, has a position on key.
func (s *State) holds(key copytrade.PositionKey) bool {
	for _, p := range s.Fund.Positions {
		if p.Key() == key && p.Size.IsPositive() {
			return true
		}
	}
	return false
}

func (s *State) noteOrder(n OrderNote) {
	s.RecentOrders = append(s.RecentOrders, n)
	if len(s.RecentOrders) > maxRecent {
		s.RecentOrders = s.RecentOrders[len(s.RecentOrders)-maxRecent:]
	}
}

func (s *State) noteSkipped(seq int64) {
	s.Skipped = append(s.Skipped, seq)
	if len(s.Skipped) > maxRecent {
		s.Skipped = s.Skipped[len(s.Skipped)-maxRecent:]
	}
}

func (s *State) wasSkipped(seq int64) bool {
	for _, k := range s.Skipped {
		if k == seq {
			return true
		}
	}
	return false
}

// Input starts a run: the relationship's follower and trader, and on
// continue-as-new the state carried over.
type Input struct {
	FollowerID string `json:"follower_id"`
	TraderID   string `json:"trader_id"`
	State      *State `json:"state,omitempty"`
}

// Result is how a relationship ended.
type Result struct {
	RelationshipID string          `json:"relationship_id"`
	Status         Status          `json:"status"`
	StopReason     string          `json:"stop_reason,omitempty"`
	Released       decimal.Decimal `json:"released"`
}

// FollowResult answers the follow update.
type FollowResult struct {
	RelationshipID string          `json:"relationship_id"`
	Status         Status          `json:"status"`
	Fund           activities.Fund `json:"fund"`
}

// InvestmentRequest raises or lowers the investment (R18).
type InvestmentRequest struct {
	// Direction is "raise" or "lower".
	Direction string          `json:"direction"`
	Amount    decimal.Decimal `json:"amount"`
	// RequestID, when the caller gives one, names this change across the
	// caller's retries: api.Client sends it as the update's id, and
	// Temporal answers a retry with the first attempt's outcome instead of
	// changing the investment again (within one run of the workflow: a
	// retry after continue-as-new is a new change).
	RequestID string `json:"request_id,omitempty"`
}

// Investment directions.
const (
	Raise = "raise"
	Lower = "lower"
)

// StopLossRequest sets or clears (zero) the stop loss and its stop setting.
type StopLossRequest struct {
	StopLoss decimal.Decimal    `json:"stop_loss"`
	StopMode copytrade.StopMode `json:"stop_mode,omitempty"`
}

// UnfollowResult answers the unfollow update.
type UnfollowResult struct {
	Status   Status          `json:"status"`
	Released decimal.Decimal `json:"released,omitzero"`
	Fund     activities.Fund `json:"fund"`
}

// View is what the state query returns.
type View struct {
	State   State  `json:"state"`
	Summary string `json:"summary"`
}
