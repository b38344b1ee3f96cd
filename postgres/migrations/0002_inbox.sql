-- tidings-postgres migration 2: the inbox.
--
-- Names are unqualified, as in migration 1.

-- One row per event a consumer group handled, written in the transaction of
-- the handler's own writes: an event delivered again finds its row and
-- changes nothing.
create table inbox (
    group_name text not null,
    event_id   text not null,
    handled_at timestamptz not null default now(),
    primary key (group_name, event_id)
);

-- What forgetting old marks reads.
create index inbox_handled_at on inbox (handled_at);
