//! The outbox: events written as rows in the caller's transaction, with
//! their id and time fixed there, for a relay to publish once committed.

use sqlx::{PgConnection, PgPool};
use tidings_runtime::{Event, Meta, Ulid};
use time::OffsetDateTime;

use crate::error::Error;
use crate::schema::{Migration, Schema};

/// The outbox table of one schema, on one pool.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> Result<(), tidings_postgres::Error> {
/// let outbox = tidings_postgres::Outbox::new(pool.clone());
/// outbox.migrate().await?;
/// let events = tidings_postgres::Outbox::in_schema(pool, "billing_events")?;
/// # Ok(()) }
/// ```
///
/// Cheap to clone: a pool handle and the schema name.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub(crate) pool: PgPool,
    pub(crate) schema: Schema,
    insert: std::sync::Arc<str>,
    insert_keyed: std::sync::Arc<str>,
}

impl Outbox {
    /// The outbox in the schema `tidings`.
    pub fn new(pool: PgPool) -> Outbox {
        Outbox::with_schema(pool, Schema::default())
    }

    /// The outbox in another schema, whose name is checked: a lower-case
    /// letter or `_`, then lower-case letters, digits and `_`, at most 63
    /// bytes, not starting with `pg_` ([`Error::InvalidSchema`] otherwise).
    pub fn in_schema(pool: PgPool, schema: &str) -> Result<Outbox, Error> {
        Ok(Outbox::with_schema(pool, Schema::new(schema)?))
    }

    fn with_schema(pool: PgPool, schema: Schema) -> Outbox {
        let table = schema.table("outbox");
        let columns = "event_id, stream, type, version, schema_path, data, time, \
                       correlation_id, causation_id, tenant_id, subject, traceparent, \
                       extensions, partition_key";
        let values = "$1, $2, $3, $4, $5, $6::text::json, $7, $8, $9, $10, $11, $12, \
                      $13::text::jsonb, $14";
        let insert = format!("insert into {table} ({columns}) values ({values})");
        // The lock on the key, held to commit, makes transactions that
        // enqueue one key take their positions one after the other, so that
        // position order is commit order within a key: a relay never sees a
        // later row of a key before an earlier one has committed.
        let insert_keyed = format!(
            "insert into {table} ({columns}) select {values} \
             from (select pg_advisory_xact_lock(hashtextextended($15, 0))) as key_lock"
        );
        Outbox {
            pool,
            schema,
            insert: insert.into(),
            insert_keyed: insert_keyed.into(),
        }
    }

    /// The pool the outbox was made with.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema of the outbox table.
    pub fn schema(&self) -> &str {
        self.schema.name()
    }

    /// Creates the schema and the tables of the outbox and the inbox, or
    /// brings them up to date: each migration of [`MIGRATIONS`](crate::MIGRATIONS)
    /// runs once, recorded in `<schema>.migrations`, under a lock so that
    /// services starting together do not race. Returns the migrations it
    /// applied now.
    pub async fn migrate(&self) -> Result<Vec<Migration>, Error> {
        self.schema.migrate(&self.pool).await
    }

    /// Writes `event` into the outbox in the caller's transaction: it is
    /// published once the transaction commits, and never if it rolls back.
    /// The event's id and time are fixed now, so a relay that publishes it
    /// twice publishes the same id, which inboxes drop. Returns the id.
    ///
    /// ```text
    /// INSERT INTO "<schema>".outbox (event_id, stream, type, version, …, data) VALUES (…)
    /// ```
    ///
    /// `conn` is the transaction (`&mut tx`) or any connection.
    pub async fn enqueue<E: Event>(
        &self,
        conn: &mut PgConnection,
        event: &E,
    ) -> Result<Ulid, Error> {
        self.write(conn, event, Meta::default(), None).await
    }

    /// [`Outbox::enqueue`] with correlation and causation ids, tenant,
    /// subject, traceparent, extensions, or an id of the caller's
    /// ([`Meta::event_id`]). They are checked now, as a publish checks them.
    pub async fn enqueue_with<E: Event>(
        &self,
        conn: &mut PgConnection,
        event: &E,
        meta: Meta,
    ) -> Result<Ulid, Error> {
        self.write(conn, event, meta, None).await
    }

    /// [`Outbox::enqueue_with`] under a partition key, written as the
    /// event's `partitionkey`: the relays publish the events of one key in
    /// the order their transactions committed.
    ///
    /// The order holds because the transaction takes a lock on the key
    /// (`pg_advisory_xact_lock`) that it holds until it ends, so
    /// transactions enqueueing one key do so one after the other. A
    /// transaction that enqueues several keys takes them in the order
    /// given; enqueue them in one order everywhere (sorted, say), or two
    /// transactions taking two keys the other way round deadlock and
    /// PostgreSQL aborts one.
    pub async fn enqueue_keyed<E: Event>(
        &self,
        conn: &mut PgConnection,
        key: &str,
        event: &E,
        meta: Meta,
    ) -> Result<Ulid, Error> {
        self.write(conn, event, meta, Some(key)).await
    }

    async fn write<E: Event>(
        &self,
        conn: &mut PgConnection,
        event: &E,
        meta: Meta,
        key: Option<&str>,
    ) -> Result<Ulid, Error> {
        let Some(stream) = E::STREAM else {
            return Err(Error::NoStream { type_name: E::TYPE });
        };
        let data = serde_json::to_string(event).map_err(|source| Error::Encode {
            type_name: E::TYPE,
            source,
        })?;
        // Not `unwrap_or_default`: the default ULID is the nil one.
        let id = match meta.event_id {
            Some(id) => id,
            None => Ulid::new(),
        };
        // The time as it goes on the wire, in milliseconds, so that the row
        // holds what is published.
        let now = OffsetDateTime::now_utc();
        let time = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now);
        let mut raw =
            tidings_runtime::RawEvent::new(stream, E::TYPE, E::VERSION, data.clone().into_bytes())
                .id(id)
                .time(time)
                .schema_path(E::SCHEMA_PATH);
        if let Some(key) = key {
            raw = raw.partition_key(key);
        }
        let extensions = if meta.extensions.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&meta.extensions).map_err(|source| Error::Encode {
                    type_name: E::TYPE,
                    source,
                })?,
            )
        };
        // Everything a relay checks, checked where the caller can still act
        // on it: the names, the tenant, the extension names, the key.
        let raw = raw.meta(meta);
        raw.check()?;
        let sql = if key.is_some() {
            &self.insert_keyed
        } else {
            &self.insert
        };
        let m = &raw.meta;
        let mut q = sqlx::query(sql)
            .bind(id.to_string())
            .bind(stream)
            .bind(E::TYPE)
            .bind(i64::from(E::VERSION))
            .bind(E::SCHEMA_PATH)
            .bind(&data)
            .bind(time)
            .bind(m.correlation_id.as_deref())
            .bind(m.causation_id.as_deref())
            .bind(m.tenant.as_deref())
            .bind(m.subject.as_deref())
            .bind(m.traceparent.as_deref())
            .bind(extensions)
            .bind(key);
        if let Some(key) = key {
            q = q.bind(format!("{}.outbox {key}", self.schema.name()));
        }
        q.execute(conn).await.map_err(Error::database(format!(
            "enqueueing `{}` into {}",
            E::TYPE,
            self.schema.table("outbox")
        )))?;
        Ok(id)
    }
}
