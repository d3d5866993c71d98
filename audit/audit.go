// Package audit checks that smartcopy's records agree with each other: the
// ledger (store.Audit: every transaction balances, every follower's money
// adds up), every order against the one trader event and relationship it
// belongs to, and every live relationship's workflow against the venue's
// positions in PostgreSQL. The starter's audit command and the fault suite
// run it; an operator can run it on a live system.
package audit

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"smartcopy/api"
	"smartcopy/copytrade"
	"smartcopy/ledger"
	"smartcopy/store"
	"smartcopy/workflows"
)

// Report is what the audit checked and every difference it found, each
// prefixed with its check's name.
type Report struct {
	Checks      []store.AuditCheck
	Differences []string
}

// OK reports whether every check agreed.
func (r Report) OK() bool { return len(r.Differences) == 0 }

func (r *Report) add(c store.AuditCheck, diffs []string) {
	c.Failed = len(diffs)
	r.Checks = append(r.Checks, c)
	for _, d := range diffs {
		r.Differences = append(r.Differences, c.Name+": "+d)
	}
}

// Print writes what was checked, over how many rows, and every difference.
func (r Report) Print(w io.Writer) {
	for _, c := range r.Checks {
		fmt.Fprintf(w, "checked %-26s %4d rows, %d different — %s\n", c.Name+":", c.Rows, c.Failed, c.Compared)
	}
	for _, d := range r.Differences {
		fmt.Fprintf(w, "DIFFERENCE %s\n", d)
	}
	if r.OK() {
		fmt.Fprintf(w, "audit passed: %d checks, no difference\n", len(r.Checks))
	} else {
		fmt.Fprintf(w, "audit FAILED: %d difference(s)\n", len(r.Differences))
	}
}

// Options tune the audit.
type Options struct {
	// Settle is how long a live relationship's workflow may disagree with
	// PostgreSQL before the difference counts. An order in flight has
	// changed the positions table and not yet the workflow's state (the
	// activity's result is on its way), so a running system is compared
	// again until it agrees or Settle has passed. Zero means 5 s.
	Settle time.Duration
}

// Run audits PostgreSQL through c.Store and the relationship workflows
// through c. It returns an error only when it could not look; what it
// found is in the report.
func Run(ctx context.Context, c *api.Client, opts Options) (Report, error) {
	if opts.Settle <= 0 {
		opts.Settle = 5 * time.Second
	}
	var r Report
	ledgerReport, err := c.Store.Audit(ctx)
	if err != nil {
		return Report{}, err
	}
	r.Checks = append(r.Checks, ledgerReport.Checks...)
	r.Differences = append(r.Differences, ledgerReport.Differences...)
	if err := orderChecks(ctx, c.Store, &r); err != nil {
		return Report{}, err
	}
	if err := workflowChecks(ctx, c, opts.Settle, &r); err != nil {
		return Report{}, err
	}
	return r, nil
}

// sqlCheck is one check in SQL: a query returning one row per thing
// compared, with a sentence when it disagrees and an empty string when it agrees.
type sqlCheck struct {
	name, compared, sql string
}

// Orders that are not copies of a trader event: the market closes of a
// stop, one per position, and the copies of the positions a trader held at
// follow time (R5). Their ids are the workflow's.
var (
	stopEvents     = []string{workflows.StopUnfollow, workflows.StopLoss}
	existingPrefix = "existing-"
)

// The SQL spells two ids the Go code builds: a copy's client order id
// (activities.ClientOrderID: relationship id, ':', trader event id; a stop
// close adds '/', instrument, '/', side) and the fund account
// (ledger.Fund). TestOrderIDsAsTheSQLSpellsThem fails if they drift apart.
// @stops are the stop events, @existing the existing-position prefix,
// @fund the fund account prefix.
var orderSQL = []sqlCheck{
	{
		name:     "order ids",
		compared: "each order: its client order id against the one derived from its relationship and trader event",
		sql: `select case when o.client_order_id <> o.relationship_id || ':' || o.trader_event_id
				and not (o.trader_event_id = any(@stops) and o.client_order_id = o.relationship_id || ':' || o.trader_event_id || '/' || o.inst_id || '/' || o.side)
			then format('order %s (relationship %s, trader event %s) does not carry the id derived from them', o.client_order_id, o.relationship_id, o.trader_event_id)
			else '' end
			from orders o order by o.id`,
	},
	{
		name:     "one order per event",
		compared: "each (relationship, trader event), per position for a stop: how many orders it has, against one",
		sql: `select case when count(*) > 1
			then format('relationship %s has %s orders for trader event %s: %s', relationship_id, count(*), trader_event_id,
				string_agg(client_order_id || ' ' || status, ', ' order by id))
			else '' end
			from orders
			group by relationship_id, trader_event_id, case when trader_event_id = any(@stops) then inst_id || '/' || side else '' end
			order by relationship_id, trader_event_id`,
	},
	{
		name:     "orders of relationships",
		compared: "each order: its follower and trader against its relationship's",
		sql: `select case
				when r.id is null then format('order %s names relationship %s, which does not exist', o.client_order_id, o.relationship_id)
				when r.follower_id <> o.follower_id or r.trader_id <> o.trader_id
				then format('order %s is for %s following %s, but relationship %s is %s following %s',
					o.client_order_id, o.follower_id, o.trader_id, r.id, r.follower_id, r.trader_id)
				else '' end
			from orders o left join relationships r on r.id = o.relationship_id order by o.id`,
	},
	{
		name: "orders of trader events",
		compared: "each copy order: its trader event against the trader's recorded events after the follow " +
			"(stop closes and copies of existing positions have no trader event)",
		sql: `select case
				when o.trader_event_id = any(@stops) and position('/' in o.client_order_id) > 0 then ''
				when starts_with(o.trader_event_id, @existing) and e.event_id is null then case when coalesce(r.copy_existing, false) then ''
					else format('order %s copies an existing position, but relationship %s did not ask for that', o.client_order_id, o.relationship_id) end
				when e.event_id is null then format('order %s copies trader event %s, which trader %s never sent', o.client_order_id, o.trader_event_id, o.trader_id)
				when r.id is not null and e.seq <= r.trader_seq_at_follow then format('order %s copies trader event %s (seq %s), from before relationship %s followed at seq %s',
					o.client_order_id, o.trader_event_id, e.seq, r.id, r.trader_seq_at_follow)
				when e.kind not in ('open', 'close') then format('order %s copies trader event %s, a %s change, which places no order', o.client_order_id, o.trader_event_id, e.kind)
				else '' end
			from orders o
			left join relationships r on r.id = o.relationship_id
			left join trader_events e on e.trader_id = o.trader_id and e.event_id = o.trader_event_id
			order by o.id`,
	},
	{
		name:     "syncs of trader events",
		compared: "each leverage or margin sync: its key and trader event against the relationship's recorded events of that kind",
		sql: `select case
				when r.id is null then format('sync %s names relationship %s, which does not exist', s.idempotency_key, s.relationship_id)
				when e.event_id is null then format('sync %s applies trader event %s, which trader %s never sent', s.idempotency_key, s.trader_event_id, r.trader_id)
				when e.kind <> s.kind then format('sync %s is a %s sync, but trader event %s is a %s', s.idempotency_key, s.kind, e.event_id, e.kind)
				when e.seq <= r.trader_seq_at_follow then format('sync %s applies trader event %s (seq %s), from before relationship %s followed at seq %s',
					s.idempotency_key, e.event_id, e.seq, r.id, r.trader_seq_at_follow)
				when s.idempotency_key <> s.relationship_id || ':' || s.trader_event_id
					and not starts_with(s.idempotency_key, s.relationship_id || ':' || s.trader_event_id || '/retry-')
				then format('sync %s does not carry the key derived from relationship %s and trader event %s', s.idempotency_key, r.id, e.event_id)
				else '' end
			from risk_syncs s
			left join relationships r on r.id = s.relationship_id
			left join trader_events e on e.trader_id = r.trader_id and e.event_id = s.trader_event_id
			order by s.id`,
	},
	{
		name:     "ended relationships",
		compared: "each ended relationship: its positions and copy fund against none and zero",
		sql: `select case
				when exists (select 1 from positions p where p.relationship_id = r.id and p.size > 0)
				then format('relationship %s has ended but still holds positions', r.id)
				when coalesce((select a.balance from ledger_accounts a where a.id = @fund || r.id), 0) <> 0
				then format('relationship %s has ended but its copy fund still holds %s', r.id, (select a.balance from ledger_accounts a where a.id = @fund || r.id))
				else '' end
			from relationships r where r.status = 'ended' order by r.id`,
	},
}

// orderChecks runs orderSQL in one repeatable-read transaction, so every
// check sees the same moment.
func orderChecks(ctx context.Context, s *store.Store, r *Report) error {
	return pgx.BeginTxFunc(ctx, s.Pool(), pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for _, q := range orderSQL {
			rows, err := tx.Query(ctx, q.sql, pgx.NamedArgs{"stops": stopEvents, "existing": existingPrefix, "fund": ledger.Fund("")})
			if err != nil {
				return fmt.Errorf("audit %s: %w", q.name, err)
			}
			found, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("audit %s: %w", q.name, err)
			}
			var diffs []string
			for _, d := range found {
				if d != "" {
					diffs = append(diffs, d)
				}
			}
			r.add(store.AuditCheck{Name: q.name, Compared: q.compared, Rows: len(found)}, diffs)
		}
		return nil
	})
}

// workflowChecks asks every live relationship's workflow for its state and
// compares it with PostgreSQL: the same relationship, the same status, the
// same positions as the venue holds.
func workflowChecks(ctx context.Context, c *api.Client, settle time.Duration, r *Report) error {
	rels, err := c.Store.Relationships(ctx, store.RelationshipFilter{LiveOnly: true})
	if err != nil {
		return err
	}
	check := store.AuditCheck{
		Name: "workflow positions",
		Compared: "each live relationship: its workflow's relationship, status and positions (state query) " +
			"against the projection and the venue's positions in PostgreSQL",
		Rows: len(rels),
	}
	var diffs []string
	deadline := time.Now().Add(settle)
	for _, rel := range rels {
		for {
			d, err := compareWorkflow(ctx, c, rel)
			if err != nil {
				return err
			}
			if len(d) == 0 || !time.Now().Before(deadline) {
				diffs = append(diffs, d...)
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	r.add(check, diffs)
	return nil
}

// compareWorkflow compares one relationship; an error is PostgreSQL's, a
// workflow that does not answer is a difference.
func compareWorkflow(ctx context.Context, c *api.Client, rel store.Relationship) ([]string, error) {
	_, venuePositions, err := c.Store.Figures(ctx, rel.ID)
	if err != nil {
		return nil, err
	}
	// The projection may have moved on (the relationship ended) since the
	// list was read: an ended relationship has no live workflow to ask.
	now, err := c.Store.Relationship(ctx, rel.ID)
	if err != nil {
		return nil, err
	}
	if !now.Live() {
		return nil, nil
	}
	name := fmt.Sprintf("relationship %s (workflow %s)", rel.ID, rel.WorkflowID)
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	view, err := c.State(qctx, rel.FollowerID, rel.TraderID)
	if err != nil {
		return []string{fmt.Sprintf("%s: the workflow did not answer its state query: %v", name, err)}, nil
	}
	st := view.State
	if st.RelationshipID != rel.ID {
		return []string{fmt.Sprintf("%s: the workflow runs relationship %q, not the projection's live one", name, st.RelationshipID)}, nil
	}
	var diffs []string
	if string(st.Status) != now.Status {
		diffs = append(diffs, fmt.Sprintf("%s: the workflow is %s, the projection says %s", name, st.Status, now.Status))
	}
	return append(diffs, comparePositions(name, st.Fund.Positions, venuePositions)...), nil
}

// comparePositions names every (instrument, side) where the workflow's
// positions and the venue's differ.
func comparePositions(name string, workflow, venue []copytrade.Position) []string {
	byKey := func(ps []copytrade.Position) map[copytrade.PositionKey]copytrade.Position {
		m := make(map[copytrade.PositionKey]copytrade.Position, len(ps))
		for _, p := range ps {
			if p.Size.IsPositive() {
				m[p.Key()] = p
			}
		}
		return m
	}
	wf, vn := byKey(workflow), byKey(venue)
	var diffs []string
	for _, k := range sortedKeys(wf, vn) {
		w, inW := wf[k]
		v, inV := vn[k]
		switch {
		case !inV:
			diffs = append(diffs, fmt.Sprintf("%s: the workflow holds %s %s, the venue holds nothing there", name, k, describe(w)))
		case !inW:
			diffs = append(diffs, fmt.Sprintf("%s: the venue holds %s %s, the workflow holds nothing there", name, k, describe(v)))
		case !samePosition(w, v):
			diffs = append(diffs, fmt.Sprintf("%s: on %s the workflow holds %s, the venue %s", name, k, describe(w), describe(v)))
		}
	}
	return diffs
}

func samePosition(a, b copytrade.Position) bool {
	return a.Size.Equal(b.Size) && a.AvgPrice.Equal(b.AvgPrice) && a.Leverage.Equal(b.Leverage) &&
		a.MarginMode == b.MarginMode && a.Margin.Equal(b.Margin)
}

func describe(p copytrade.Position) string {
	return fmt.Sprintf("%s contracts @ %s, %sx %s, margin %s", p.Size, p.AvgPrice, p.Leverage, p.MarginMode, p.Margin)
}

func sortedKeys(maps ...map[copytrade.PositionKey]copytrade.Position) []copytrade.PositionKey {
	seen := map[copytrade.PositionKey]bool{}
	var keys []copytrade.PositionKey
	for _, m := range maps {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.SortFunc(keys, func(a, b copytrade.PositionKey) int { return strings.Compare(a.String(), b.String()) })
	return keys
}
