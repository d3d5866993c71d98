package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AuditCheck is one comparison the audit made: what it compared, over how
// many rows, and how many disagreed.
type AuditCheck struct {
	Name     string
	Compared string
	Rows     int
	Failed   int
}

// AuditReport is the outcome of Audit. Differences name the exact rows and
// amounts that disagree, each prefixed with its check's name.
type AuditReport struct {
	Checks      []AuditCheck
	Differences []string
}

// OK reports whether every check agreed.
func (r AuditReport) OK() bool { return len(r.Differences) == 0 }

// auditQuery is one check: a query returning one row per thing compared,
// with a description of the row when it disagrees (empty when it agrees).
type auditQuery struct {
	name, compared, sql string
}

// The account ids below are ledger.Available, ledger.Fund and ledger.Manual
// spelled in SQL, so each check is one set-based query rather than one
// query per follower. TestAudit fails if they drift apart.
var auditQueries = []auditQuery{
	{
		name:     "transactions balance",
		compared: "each ledger transaction: the sum of its postings against zero",
		sql: `select case when sum(p.amount) <> 0
				then format('transaction %s (%s, key %s) sums to %s', t.id, t.kind, t.idempotency_key, sum(p.amount)) else '' end
			from ledger_transactions t join ledger_postings p on p.transaction_id = t.id
			group by t.id order by t.id`,
	},
	{
		name:     "account balances",
		compared: "each ledger account that keeps a stored balance: that balance against the sum of its postings",
		sql: `select case when a.balance <> coalesce(sum(p.amount), 0)
				then format('account %s has balance %s but its postings sum to %s', a.id, a.balance, coalesce(sum(p.amount), 0)) else '' end
			from ledger_accounts a left join ledger_postings p on p.account_id = a.id
			where a.balance_kept
			group by a.id order by a.id`,
	},
	{
		name:     "no overdraft",
		compared: "each account that may not go negative: its balance against zero",
		sql: `select case when balance < 0 then format('account %s (%s) is at %s', id, kind, balance) else '' end
			from ledger_balances where not allow_negative order by id`,
	},
	{
		name: "follower money",
		compared: "each follower: available + copy funds + manual against deposits + realized PnL - fees " +
			"(deposits: postings of deposit transactions to the available account; PnL and fees: filled orders of their relationships)",
		sql: `with f as (
				select f.id,
					coalesce((select balance from ledger_accounts where id = 'follower:' || f.id || ':available'), 0) as available,
					coalesce((select sum(a.balance) from relationships r join ledger_accounts a on a.id = 'fund:' || r.id
						where r.follower_id = f.id), 0) as funds,
					coalesce((select balance from ledger_accounts where id = 'follower:' || f.id || ':manual'), 0) as manual,
					coalesce((select sum(p.amount) from ledger_postings p join ledger_transactions t on t.id = p.transaction_id
						where t.kind = 'deposit' and p.account_id = 'follower:' || f.id || ':available'), 0) as deposits,
					coalesce((select sum(o.gross_pnl) from orders o join relationships r on r.id = o.relationship_id
						where r.follower_id = f.id and o.status = 'filled'), 0) as realized,
					coalesce((select sum(o.fee) from orders o join relationships r on r.id = o.relationship_id
						where r.follower_id = f.id and o.status = 'filled'), 0) as fees
				from followers f
			)
			select case when available + funds + manual <> deposits + realized - fees
				then format('follower %s: available %s + funds %s + manual %s = %s, but deposits %s + realized %s - fees %s = %s',
					id, available, funds, manual, available + funds + manual, deposits, realized, fees, deposits + realized - fees)
				else '' end
			from f order by id`,
	},
	{
		name: "fund equity",
		compared: "each relationship not ended: its fund account balance against investment + realized PnL - fees " +
			"- margin handed over to the follower (handover transactions)",
		sql: `with r as (
				select r.id, r.investment,
					coalesce((select balance from ledger_accounts where id = 'fund:' || r.id), 0) as balance,
					coalesce((select sum(o.gross_pnl) from orders o where o.relationship_id = r.id and o.status = 'filled'), 0) as realized,
					coalesce((select sum(o.fee) from orders o where o.relationship_id = r.id and o.status = 'filled'), 0) as fees,
					coalesce((select -sum(p.amount) from ledger_postings p join ledger_transactions t on t.id = p.transaction_id
						where t.kind = 'handover' and p.account_id = 'fund:' || r.id), 0) as handed_over
				from relationships r where r.status <> 'ended'
			)
			select case when balance <> investment + realized - fees - handed_over
				then format('relationship %s: fund balance %s, but investment %s + realized %s - fees %s - handed over %s = %s',
					id, balance, investment, realized, fees, handed_over, investment + realized - fees - handed_over)
				else '' end
			from r order by id`,
	},
	{
		name:     "fund totals",
		compared: "each relationship's running realized PnL and fees (fund_totals) against the sums of its filled orders",
		sql: `with o as (
				select relationship_id, sum(gross_pnl) as realized, sum(fee) as fees, count(*) as fills
				from orders where status = 'filled' group by relationship_id
			)
			select case when t.relationship_id is null or o.relationship_id is null
					or t.realized_pnl <> o.realized or t.fees <> o.fees or t.fills <> o.fills
				then format('relationship %s: totals realized %s, fees %s over %s fills, but its orders realized %s, fees %s over %s fills',
					coalesce(t.relationship_id, o.relationship_id), t.realized_pnl, t.fees, t.fills, o.realized, o.fees, o.fills)
				else '' end
			from fund_totals t full join o on o.relationship_id = t.relationship_id
			where coalesce(t.fills, 0) <> 0 or o.relationship_id is not null
			order by coalesce(t.relationship_id, o.relationship_id)`,
	},
	{
		name:     "venue fees",
		compared: "the venue's fee account against the fees of all filled orders",
		sql: `select case when a.balance <> o.fees
				then format('account venue:fees holds %s but filled orders charged %s', a.balance, o.fees) else '' end
			from ledger_balances a, (select coalesce(sum(fee), 0) as fees from orders where status = 'filled') o
			where a.id = 'venue:fees'`,
	},
	{
		name:     "venue pnl",
		compared: "the venue's PnL account against minus the realized PnL of all filled orders",
		sql: `select case when a.balance <> -o.pnl
				then format('account venue:pnl holds %s but filled orders realized %s', a.balance, o.pnl) else '' end
			from ledger_balances a, (select coalesce(sum(gross_pnl), 0) as pnl from orders where status = 'filled') o
			where a.id = 'venue:pnl'`,
	},
}

// Audit checks SPEC §4's invariant from the rows themselves: every ledger
// transaction balances, every account's balance is the sum of its postings,
// no account that may not go negative has, every follower's money adds up
// to deposits plus realized PnL less fees, every live fund holds its
// equity, and the venue's accounts match the orders. It runs in one
// repeatable-read transaction so all checks see the same moment.
func (s *Store) Audit(ctx context.Context) (AuditReport, error) {
	var report AuditReport
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for _, q := range auditQueries {
			check := AuditCheck{Name: q.name, Compared: q.compared}
			rows, err := tx.Query(ctx, q.sql)
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			diffs, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			check.Rows = len(diffs)
			for _, d := range diffs {
				if d != "" {
					check.Failed++
					report.Differences = append(report.Differences, q.name+": "+d)
				}
			}
			report.Checks = append(report.Checks, check)
		}
		return nil
	})
	if err != nil {
		return AuditReport{}, fail(err, "audit")
	}
	return report, nil
}
