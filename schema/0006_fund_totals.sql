-- Running totals of each copy fund's realized PnL (gross) and fees. The
-- fund figures are read after every copy and by the stop-loss sweep; a sum
-- over a relationship's whole order history would grow with every trade it
-- ever made. A trigger keeps the totals in the same transaction as every
-- filled order, whoever writes it; the audit checks them against the orders.
create table fund_totals (
    relationship_id text primary key,
    realized_pnl    numeric not null default 0,
    fees            numeric not null default 0,
    fills           bigint not null default 0
);

insert into fund_totals (relationship_id, realized_pnl, fees, fills)
select relationship_id, sum(gross_pnl), sum(fee), count(*)
from orders where status = 'filled'
group by relationship_id;

create function fund_totals_follow_orders() returns trigger language plpgsql as $$
begin
    if tg_op in ('DELETE', 'UPDATE') and old.status = 'filled' then
        update fund_totals set realized_pnl = realized_pnl - old.gross_pnl, fees = fees - old.fee, fills = fills - 1
        where relationship_id = old.relationship_id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.status = 'filled' then
        insert into fund_totals (relationship_id, realized_pnl, fees, fills)
        values (new.relationship_id, new.gross_pnl, new.fee, 1)
        on conflict (relationship_id) do update set
            realized_pnl = fund_totals.realized_pnl + excluded.realized_pnl,
            fees = fund_totals.fees + excluded.fees,
            fills = fund_totals.fills + 1;
    end if;
    return null;
end;
$$;

create trigger orders_fund_totals
    after insert or update or delete on orders
    for each row execute function fund_totals_follow_orders();
