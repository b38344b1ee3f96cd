//! Every error of tidings-postgres.

/// What went wrong in the outbox, the relay or the inbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PostgreSQL call failed.
    #[error("PostgreSQL failed while {doing}: {source}")]
    Database {
        /// What was being done, such as `enqueueing into tidings.outbox`.
        doing: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] tidings_runtime::Error),
    /// A schema name given at run time that cannot be one.
    #[error("invalid PostgreSQL schema name `{name}`: {reason}")]
    InvalidSchema {
        /// The name as given.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// An event type with no stream: the outbox relays to streams only.
    #[error("`{type_name}` has no stream; the outbox relays events to streams only")]
    NoStream {
        /// The event type.
        type_name: &'static str,
    },
    /// An event that cannot be serialized.
    #[error("cannot serialize `{type_name}` to JSON: {source}")]
    Encode {
        /// The event type.
        type_name: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// An applied migration whose name differs from the one this version of
    /// the crate ships under its number: the schema was migrated by
    /// something else, and the crate will not guess what it holds.
    #[error("migration {version} in schema `{schema}` is `{found}`, but tidings-postgres ships `{expected}` under that number")]
    MigrationMismatch {
        /// The schema.
        schema: String,
        /// The migration's number.
        version: i32,
        /// Its name as recorded.
        found: String,
        /// Its name as shipped.
        expected: &'static str,
    },
    /// The inbox was asked for a transaction outside a delivery: the
    /// context has no group or no event id.
    #[error("the inbox needs the group and event id of a delivery; this context has {missing}")]
    NoDelivery {
        /// What the context lacks.
        missing: &'static str,
    },
    /// The relay's task ended in a panic or was cancelled.
    #[error("the relay's task failed: {reason}")]
    RelayTask {
        /// The join error.
        reason: String,
    },
}

impl Error {
    pub(crate) fn database(doing: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Database { doing, source }
    }
}
