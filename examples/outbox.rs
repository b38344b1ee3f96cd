//! The transactional outbox and inbox on PostgreSQL: an order written with
//! its event in one transaction, another rolled back (its event is never
//! published), a relay publishing what committed, and a handler whose write
//! and inbox mark commit together, so the event delivered a second time
//! changes nothing.
//!
//! ```text
//! DATABASE_URL=postgres://user:pass@localhost/db cargo run --example outbox --features postgres
//! ```
//!
//! Needs `DATABASE_URL`; without it, it says so and exits. Redis is used
//! when `REDIS_URL` is set, the in-memory broker otherwise. It creates the
//! schema `tidings` (outbox and inbox) and the table `example_orders`.

use std::time::Duration;

use tidings::postgres::sqlx::{self, PgPool};
use tidings::postgres::{Outbox, PgInbox};
use tidings::{event, handler, Bus, Context, HandlerResult, Meta, State};
use tokio::sync::mpsc;

/// An order was placed.
#[event(stream = "orders", version = 1)]
#[derive(Debug)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: String,
    /// Its amount, in cents.
    pub cents: i64,
}

/// What the billing handler is given: the inbox, and where it says what it
/// did (for this example to wait on).
#[derive(Clone)]
struct Billing {
    inbox: PgInbox,
    done: mpsc::UnboundedSender<String>,
}

#[handler(group = "billing")]
async fn bill(e: OrderPlaced, ctx: Context, State(billing): State<Billing>) -> HandlerResult {
    let outcome = match billing.inbox.begin(&ctx).await? {
        None => format!("{}: already billed, nothing done", e.order_id),
        Some(mut tx) => {
            sqlx::query("update example_orders set billed = billed + 1 where id = $1")
                .bind(&e.order_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?; // the write and the inbox mark, together
            format!("{}: billed {} cents", e.order_id, e.cents)
        }
    };
    let _ = billing.done.send(outcome);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt::init();
    let Some(url) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        println!("this example needs PostgreSQL: set DATABASE_URL=postgres://user:pass@host/db");
        return Ok(());
    };
    let pool = PgPool::connect(url.trim()).await?;
    let outbox = Outbox::new(pool.clone());
    outbox.migrate().await?;
    sqlx::raw_sql(
        "create table if not exists example_orders (
             id text primary key, cents bigint not null, billed int not null default 0)",
    )
    .execute(&pool)
    .await?;
    let suffix = tidings::Ulid::new().to_string();
    let (kept, dropped) = (format!("o-{suffix}"), format!("r-{suffix}"));

    // An order and its event, committed together.
    let mut tx = pool.begin().await?;
    sqlx::query("insert into example_orders (id, cents) values ($1, 1250)")
        .bind(&kept)
        .execute(&mut *tx)
        .await?;
    let placed = OrderPlaced {
        order_id: kept.clone(),
        cents: 1250,
    };
    let id = outbox
        .enqueue_keyed(&mut tx, &kept, &placed, Meta::default())
        .await?;
    tx.commit().await?;
    println!("committed order {kept} with event {id}");

    // Another, rolled back: its event is never published.
    let mut tx = pool.begin().await?;
    sqlx::query("insert into example_orders (id, cents) values ($1, 990)")
        .bind(&dropped)
        .execute(&mut *tx)
        .await?;
    let never = OrderPlaced {
        order_id: dropped.clone(),
        cents: 990,
    };
    outbox
        .enqueue_keyed(&mut tx, &dropped, &never, Meta::default())
        .await?;
    tx.rollback().await?;
    println!("rolled back order {dropped}; its event stays unpublished");

    let bus = Bus::from_env().await?;
    let (done, mut outcomes) = mpsc::unbounded_channel();
    let billing = Billing {
        inbox: PgInbox::new(pool.clone()),
        done,
    };
    let worker = bus.consumer().state(billing).handler(bill).start().await?;
    let relay = outbox.relay(&bus).start().await?;
    let wait = Duration::from_secs(10);
    let first = tokio::time::timeout(wait, outcomes.recv())
        .await?
        .unwrap_or_default();
    println!("handler: {first}");

    // The same event again, with its one id, as a relay that died before
    // marking its row would publish it: the inbox drops it.
    bus.publish_with(&placed, Meta::default().event_id(id))
        .await?;
    let again = tokio::time::timeout(wait, outcomes.recv())
        .await?
        .unwrap_or_default();
    println!("handler, same event again: {again}");

    let stats = relay.shutdown().await?;
    worker.shutdown().await?;
    let billed: i32 = sqlx::query_scalar("select billed from example_orders where id = $1")
        .bind(&kept)
        .fetch_one(&pool)
        .await?;
    println!(
        "relay published {}, order {kept} billed {billed} time(s)",
        stats.published
    );
    Ok(())
}
