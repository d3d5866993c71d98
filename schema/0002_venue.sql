-- The paper venue's instruments and mark prices. Figures are OKX's for its
-- USDT-margined perpetual swaps.
create table instruments (
    id                text primary key,
    ct_val            numeric not null check (ct_val > 0),
    lot_size          numeric not null check (lot_size > 0),
    min_size          numeric not null check (min_size > 0),
    tick_size         numeric not null check (tick_size > 0),
    max_leverage      numeric not null check (max_leverage >= 1),
    taker_fee_rate    numeric not null check (taker_fee_rate >= 0),
    maint_margin_rate numeric not null check (maint_margin_rate >= 0)
);

insert into instruments values
    ('BTC-USDT-SWAP', 0.01, 0.01, 0.01, 0.1, 100, 0.0005, 0.004),
    ('ETH-USDT-SWAP', 0.1, 0.01, 0.01, 0.01, 100, 0.0005, 0.004);

create table mark_prices (
    inst_id    text primary key references instruments (id),
    price      numeric not null check (price > 0),
    updated_at timestamptz not null default now()
);
