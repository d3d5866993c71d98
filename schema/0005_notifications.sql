-- Notifications outbox (R23): one row per notification, keyed so a retried
-- activity writes it once. The row is the in-app message; email delivery is
-- recorded on it so it is sent once.
create table notifications (
    id              bigserial primary key,
    idempotency_key text not null unique,
    follower_id     text not null,
    relationship_id text not null default '',
    kind            text not null check (kind in ('copy_failed', 'sync_failed', 'stop_loss', 'released')),
    subject         text not null,
    body            text not null,
    created_at      timestamptz not null default now(),
    read_at         timestamptz,
    email_sent_at   timestamptz,
    email_attempts  integer not null default 0,
    email_error     text not null default ''
);
create index notifications_follower on notifications (follower_id, id);
create index notifications_unsent on notifications (id) where email_sent_at is null;
