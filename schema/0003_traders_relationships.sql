-- Lead traders, their recorded events (one sequence per trader, one row per
-- upstream event id) and their current book, used to fill close and margin
-- events and to copy existing positions on follow (R5).
create table traders (
    id         text primary key,
    equity     numeric not null default 0 check (equity >= 0),
    last_seq   bigint not null default 0,
    created_at timestamptz not null default now()
);

create table trader_events (
    trader_id   text not null references traders (id),
    seq         bigint not null,
    event_id    text not null,
    kind        text not null,
    payload     jsonb not null,
    recorded_at timestamptz not null default now(),
    primary key (trader_id, seq),
    unique (trader_id, event_id)
);

create table trader_positions (
    trader_id   text not null references traders (id),
    inst_id     text not null references instruments (id),
    side        text not null check (side in ('long', 'short')),
    size        numeric not null check (size >= 0),
    avg_price   numeric not null,
    leverage    numeric not null,
    margin_mode text not null check (margin_mode in ('cross', 'isolated')),
    margin      numeric not null,
    primary key (trader_id, inst_id, side)
);

-- Followers: the holders of available balances.
create table followers (
    id         text primary key,
    email      text not null default '',
    created_at timestamptz not null default now()
);

-- Projection of copy relationships for look-ups (limits, fan-out, the CLI).
-- The workflow is the source of truth for a relationship's state; this row
-- follows it.
create table relationships (
    id                   text primary key,
    workflow_id          text not null,
    follower_id          text not null references followers (id),
    trader_id            text not null references traders (id),
    status               text not null check (status in ('active', 'stopping', 'ended')),
    stop_reason          text not null default '',
    investment           numeric not null check (investment >= 0),
    copy_existing        boolean not null default false,
    stop_loss            numeric not null default 0 check (stop_loss >= 0),
    stop_mode            text not null check (stop_mode in ('market_close', 'copy_close', 'manual_close')),
    trader_seq_at_follow bigint not null,
    released             numeric,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    ended_at             timestamptz
);
-- At most one live relationship per (follower, trader) (R3).
create unique index relationships_one_live on relationships (follower_id, trader_id) where status <> 'ended';
create index relationships_trader_live on relationships (trader_id) where status <> 'ended';
create index relationships_follower on relationships (follower_id);

-- Every change of a relationship's investment amount, with its time (R26).
create table investment_changes (
    id               bigserial primary key,
    relationship_id  text not null references relationships (id),
    idempotency_key  text not null unique,
    kind             text not null check (kind in ('follow', 'raise', 'lower', 'release')),
    amount           numeric not null,
    investment_after numeric not null,
    created_at       timestamptz not null default now()
);
create index investment_changes_relationship on investment_changes (relationship_id);
