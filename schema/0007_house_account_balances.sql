-- The house accounts (world:deposits, venue:fees, venue:pnl) take a posting
-- from nearly every money move: every filled order posts its fee to
-- venue:fees. Keeping their stored balance meant every order of every
-- relationship locked that one row until commit, and all copies
-- serialized on it. Their postings stay; their balance is derived from the
-- postings when read (ledger_balances), and only accounts with
-- balance_kept have a stored balance, updated with each posting.
alter table ledger_accounts add column balance_kept boolean not null default true;

update ledger_accounts set balance_kept = false, balance = 0
where id in ('world:deposits', 'venue:fees', 'venue:pnl');

create index ledger_postings_account_amount on ledger_postings (account_id) include (amount);

-- Every account's balance: the stored one where it is kept, the sum of its
-- postings where it is not. Read balances here, not from ledger_accounts.
create view ledger_balances as
select a.id, a.kind, a.follower_id, a.relationship_id, a.allow_negative, a.balance_kept,
    case when a.balance_kept then a.balance
        else coalesce((select sum(p.amount) from ledger_postings p where p.account_id = a.id), 0)
    end as balance
from ledger_accounts a;
