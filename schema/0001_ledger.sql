-- Double-entry ledger: every money move is one transaction of signed
-- postings that sum to zero, with an idempotency key. Account balances are
-- a cache of the sum of their postings, kept in the same database
-- transaction; the audit recomputes them from the postings.
create table ledger_accounts (
    id             text primary key,
    -- available: a follower's manual balance; fund: one relationship's copy
    -- fund; manual: margin of positions handed over to the follower's own
    -- account; deposits, fees, pnl: the world's side of deposits, the
    -- venue's fee income and the venue's side of realized PnL.
    kind           text not null check (kind in ('available', 'fund', 'manual', 'deposits', 'fees', 'pnl')),
    follower_id    text,
    relationship_id text,
    balance        numeric not null default 0,
    allow_negative boolean not null default false,
    created_at     timestamptz not null default now(),
    constraint ledger_accounts_no_overdraft check (allow_negative or balance >= 0)
);

create table ledger_transactions (
    id              bigserial primary key,
    idempotency_key text not null unique,
    -- deposit, follow, raise, lower, release, open_fee, close, handover
    kind            text not null,
    follower_id     text,
    relationship_id text,
    memo            text not null default '',
    created_at      timestamptz not null default now()
);
create index ledger_transactions_follower on ledger_transactions (follower_id);
create index ledger_transactions_relationship on ledger_transactions (relationship_id);

create table ledger_postings (
    id             bigserial primary key,
    transaction_id bigint not null references ledger_transactions (id),
    account_id     text not null references ledger_accounts (id),
    amount         numeric not null check (amount <> 0)
);
create index ledger_postings_transaction on ledger_postings (transaction_id);
create index ledger_postings_account on ledger_postings (account_id);

-- A transaction whose postings do not sum to zero cannot commit.
create function ledger_check_balanced() returns trigger language plpgsql as $$
declare
    total numeric;
begin
    select coalesce(sum(amount), 0) into total from ledger_postings where transaction_id = new.transaction_id;
    if total <> 0 then
        raise exception 'ledger transaction % is unbalanced by %', new.transaction_id, total;
    end if;
    return null;
end;
$$;
create constraint trigger ledger_postings_balanced
    after insert on ledger_postings
    deferrable initially deferred
    for each row execute function ledger_check_balanced();

insert into ledger_accounts (id, kind, allow_negative) values
    ('world:deposits', 'deposits', true),
    ('venue:fees', 'fees', false),
    ('venue:pnl', 'pnl', true);
