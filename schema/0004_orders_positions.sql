-- Copy orders, filled or rejected, each with the trader event and the
-- sizing inputs that produced it (R26). The client order id is derived from
-- the relationship and the trader event, so a retried placement finds its
-- first result here.
create table orders (
    id              bigserial primary key,
    client_order_id text not null unique,
    relationship_id text not null,
    follower_id     text not null,
    trader_id       text not null,
    trader_event_id text not null,
    inst_id         text not null,
    side            text not null check (side in ('long', 'short')),
    action          text not null check (action in ('open', 'close')),
    status          text not null check (status in ('filled', 'rejected')),
    reason          text not null default '',
    detail          text not null default '',
    size            numeric not null default 0,
    price           numeric not null default 0,
    fee             numeric not null default 0,
    margin          numeric not null default 0,
    gross_pnl       numeric not null default 0,
    leverage        numeric not null default 0,
    margin_mode     text not null default '',
    limit_price     numeric,
    sizing          jsonb,
    created_at      timestamptz not null default now()
);
create index orders_relationship on orders (relationship_id, id);

-- A relationship's open positions on the venue, one per (instrument, side).
-- closed_size, close_value, gross_pnl and fees accumulate over the
-- position's life so that its history row has open and close prices.
create table positions (
    relationship_id text not null,
    inst_id         text not null references instruments (id),
    side            text not null check (side in ('long', 'short')),
    size            numeric not null check (size >= 0),
    avg_price       numeric not null,
    leverage        numeric not null,
    margin_mode     text not null check (margin_mode in ('cross', 'isolated')),
    margin          numeric not null check (margin >= 0),
    max_size        numeric not null default 0,
    closed_size     numeric not null default 0,
    close_value     numeric not null default 0,
    gross_pnl       numeric not null default 0,
    fees            numeric not null default 0,
    opened_at       timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    primary key (relationship_id, inst_id, side)
);

-- Closed positions (R26): open and close prices, PnL and how they ended
-- (closed on the venue, or handed over to the follower's own account).
create table position_history (
    id              bigserial primary key,
    relationship_id text not null,
    inst_id         text not null,
    side            text not null,
    max_size        numeric not null,
    avg_open_price  numeric not null,
    avg_close_price numeric,
    gross_pnl       numeric not null,
    fees            numeric not null,
    outcome         text not null check (outcome in ('closed', 'handed_over')),
    opened_at       timestamptz not null,
    closed_at       timestamptz not null default now()
);
create index position_history_relationship on position_history (relationship_id);

-- Positions handed over to the follower's own account by a manual_close stop.
create table manual_positions (
    follower_id          text not null,
    from_relationship_id text not null,
    inst_id              text not null,
    side                 text not null,
    size                 numeric not null,
    avg_price            numeric not null,
    leverage             numeric not null,
    margin_mode          text not null,
    margin               numeric not null,
    handed_over_at       timestamptz not null default now(),
    primary key (from_relationship_id, inst_id, side)
);

-- Leverage and margin syncs (R15, R16), applied or failed.
create table risk_syncs (
    id              bigserial primary key,
    idempotency_key text not null unique,
    relationship_id text not null,
    trader_event_id text not null,
    kind            text not null check (kind in ('leverage', 'margin')),
    inst_id         text not null,
    side            text not null,
    status          text not null check (status in ('applied', 'failed', 'skipped')),
    reason          text not null default '',
    leverage_before numeric,
    leverage_after  numeric,
    margin_before   numeric,
    margin_after    numeric,
    created_at      timestamptz not null default now()
);
create index risk_syncs_relationship on risk_syncs (relationship_id, id);
