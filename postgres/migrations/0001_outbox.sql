-- tidings-postgres migration 1: the outbox.
--
-- Names are unqualified: `Outbox::migrate` runs this with `search_path` set
-- to the outbox's schema (`tidings` by default). A team that runs its own
-- migration tool runs it the same way (`set local search_path to tidings;`
-- first), or qualifies the names itself.

-- One row per event enqueued in a business transaction, with everything its
-- envelope needs. `position` orders the rows; rows of one partition key are
-- enqueued under a lock held to commit, so their positions follow commit
-- order.
create table outbox (
    position       bigint generated always as identity primary key,
    event_id       text not null unique,
    stream         text not null,
    type           text not null,
    version        bigint not null,
    schema_path    text not null,
    data           json not null,
    time           timestamptz not null,
    partition_key  text,
    correlation_id text,
    causation_id   text,
    tenant_id      text,
    subject        text,
    traceparent    text,
    extensions     jsonb,
    attempts       integer not null default 0,
    last_error     text,
    published_at   timestamptz,
    failed_at      timestamptz
);

-- What the relay reads: rows neither published nor failed, in order, and the
-- oldest such row of each partition key.
create index outbox_pending on outbox (position)
    where published_at is null and failed_at is null;
create index outbox_pending_key on outbox (partition_key, position)
    where published_at is null and failed_at is null and partition_key is not null;
-- What the clean-up of kept rows reads.
create index outbox_published on outbox (published_at)
    where published_at is not null;

-- Wakes the relays (`LISTEN "<schema>.outbox"`) when rows are committed:
-- once per statement, delivered at commit, never for a rollback.
create function outbox_notify() returns trigger
language plpgsql as $$
begin
    perform pg_notify(tg_table_schema || '.outbox', '');
    return null;
end
$$;

create trigger outbox_notify after insert on outbox
    for each statement execute function outbox_notify();
