//! The inbox on PostgreSQL: a handler's transaction that starts by marking
//! the event as handled by its group, so that the handler's writes and the
//! mark commit together, or neither does.

use sqlx::{PgPool, Postgres, Transaction};
use tidings_runtime::Context;

use crate::error::Error;
use crate::schema::{Migration, Schema};

/// The inbox table of one schema, on one pool: give it to the consumer as
/// state and take it in the handler as `State<PgInbox>`.
///
/// ```no_run
/// use tidings::{event, handler, Context, HandlerResult, State};
/// use tidings_postgres::PgInbox;
///
/// #[event(stream = "billing", version = 1)]
/// pub struct InvoicePaid { pub invoice: String, pub cents: i64 }
///
/// #[handler(group = "ledger")]
/// async fn book(e: InvoicePaid, ctx: Context, State(inbox): State<PgInbox>) -> HandlerResult {
///     // `None`: this group committed this event before; nothing to do.
///     let Some(mut tx) = inbox.begin(&ctx).await? else { return Ok(()) };
///     sqlx::query("update accounts set cents = cents + $1 where invoice = $2")
///         .bind(e.cents)
///         .bind(&e.invoice)
///         .execute(&mut *tx)
///         .await?;
///     tx.commit().await?; // the writes and the mark, together
///     Ok(())
/// }
///
/// # async fn run(bus: tidings::Bus, pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = PgInbox::new(pool);
/// inbox.migrate().await?;
/// let worker = bus.consumer().state(inbox).handler(book).start().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgInbox {
    pool: PgPool,
    schema: Schema,
    mark: std::sync::Arc<str>,
    forget: std::sync::Arc<str>,
}

impl PgInbox {
    /// The inbox in the schema `tidings`.
    pub fn new(pool: PgPool) -> PgInbox {
        PgInbox::with_schema(pool, Schema::default())
    }

    /// The inbox in another schema, checked as
    /// [`Outbox::in_schema`](crate::Outbox::in_schema) checks it.
    pub fn in_schema(pool: PgPool, schema: &str) -> Result<PgInbox, Error> {
        Ok(PgInbox::with_schema(pool, Schema::new(schema)?))
    }

    fn with_schema(pool: PgPool, schema: Schema) -> PgInbox {
        let table = schema.table("inbox");
        PgInbox {
            mark: format!(
                "insert into {table} (group_name, event_id) values ($1, $2) on conflict do nothing"
            )
            .into(),
            forget: format!("delete from {table} where handled_at < $1").into(),
            pool,
            schema,
        }
    }

    /// The pool the inbox was made with.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or updates the schema's tables, as
    /// [`Outbox::migrate`](crate::Outbox::migrate) does (one set of
    /// migrations serves both).
    pub async fn migrate(&self) -> Result<Vec<Migration>, Error> {
        self.schema.migrate(&self.pool).await
    }

    /// Begins the handler's transaction with the mark of the delivery's
    /// group and event id written in it; `None` when the group has
    /// committed that event before (the transaction is rolled back).
    ///
    /// ```text
    /// BEGIN
    /// INSERT INTO "<schema>".inbox (group_name, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING
    /// ```
    ///
    /// Commit the transaction for the event to count as handled: a handler
    /// that fails before, or a process that dies, leaves no mark, and the
    /// event is handled again when it is delivered again. Two deliveries of
    /// one event at once wait on each other at the mark, and the second
    /// finds it once the first commits.
    pub async fn begin(
        &self,
        ctx: &Context,
    ) -> Result<Option<Transaction<'static, Postgres>>, Error> {
        let group = ctx.group().ok_or(Error::NoDelivery {
            missing: "no group",
        })?;
        let id = ctx.event_id().ok_or(Error::NoDelivery {
            missing: "no event id",
        })?;
        self.begin_for(group, id).await
    }

    /// [`PgInbox::begin`] for a group and event id given by the caller.
    pub async fn begin_for(
        &self,
        group: &str,
        event_id: &str,
    ) -> Result<Option<Transaction<'static, Postgres>>, Error> {
        let doing = || {
            format!(
                "marking event `{event_id}` for group `{group}` in {}",
                self.schema.table("inbox")
            )
        };
        let mut tx = self.pool.begin().await.map_err(Error::database(doing()))?;
        let marked = sqlx::query(&self.mark)
            .bind(group)
            .bind(event_id)
            .execute(&mut *tx)
            .await
            .map_err(Error::database(doing()))?;
        if marked.rows_affected() == 0 {
            tx.rollback().await.map_err(Error::database(doing()))?;
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Deletes the marks of events handled before `before`, of every
    /// group; returns how many. An event delivered again after its mark is
    /// gone is handled again, so keep marks longer than any redelivery can
    /// come (the stream's retention, say).
    pub async fn forget_before(&self, before: time::OffsetDateTime) -> Result<u64, Error> {
        let done = sqlx::query(&self.forget)
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(Error::database(format!(
                "deleting old marks of {}",
                self.schema.table("inbox")
            )))?;
        Ok(done.rows_affected())
    }
}
