//! The PostgreSQL schema the outbox and inbox tables live in: its name,
//! checked before it is written into any statement, and the migrations that
//! create the tables.

use std::sync::Arc;

use sqlx::PgPool;

use crate::error::Error;

/// The schema used unless another is given.
pub const DEFAULT_SCHEMA: &str = "tidings";

/// One migration shipped with the crate, as its SQL file says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// Its number: migrations run in ascending order, each once.
    pub version: i32,
    /// Its name, the file name without the number and `.sql`.
    pub name: &'static str,
    /// The SQL, with unqualified names: run it with `search_path` set to
    /// the schema.
    pub sql: &'static str,
}

/// Every migration, in order; the same text as `migrations/*.sql` in the
/// crate, for teams that run their own migration tool.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "outbox",
        sql: include_str!("../migrations/0001_outbox.sql"),
    },
    Migration {
        version: 2,
        name: "inbox",
        sql: include_str!("../migrations/0002_inbox.sql"),
    },
];

/// A checked schema name, quoted once for the statements.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    name: Arc<str>,
    quoted: Arc<str>,
}

impl Default for Schema {
    /// [`DEFAULT_SCHEMA`], which passes the check of [`Schema::new`] (a
    /// unit test says so).
    fn default() -> Self {
        Schema {
            name: Arc::from(DEFAULT_SCHEMA),
            quoted: Arc::from(format!("\"{DEFAULT_SCHEMA}\"")),
        }
    }
}

impl Schema {
    /// Checks a schema name: what PostgreSQL takes unquoted (a lower-case
    /// letter or `_`, then letters, digits and `_`, at most 63 bytes), and
    /// not `pg_…`, which PostgreSQL reserves. A name from configuration is
    /// written into statements, so nothing else gets through.
    pub(crate) fn new(name: &str) -> Result<Schema, Error> {
        let invalid = |reason| Error::InvalidSchema {
            name: name.to_owned(),
            reason,
        };
        let mut bytes = name.bytes();
        match bytes.next() {
            None => return Err(invalid("it is empty")),
            Some(b) if !(b.is_ascii_lowercase() || b == b'_') => {
                return Err(invalid(
                    "it starts with neither a lower-case letter nor `_`",
                ))
            }
            Some(_) => {}
        }
        if name.len() > 63 {
            return Err(invalid("PostgreSQL names have at most 63 bytes"));
        }
        if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(invalid(
                "it holds something other than lower-case letters, digits and `_`",
            ));
        }
        if name.starts_with("pg_") {
            return Err(invalid("PostgreSQL reserves names starting with `pg_`"));
        }
        Ok(Schema {
            name: Arc::from(name),
            quoted: Arc::from(format!("\"{name}\"")),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `"schema".table`.
    pub(crate) fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.quoted)
    }

    /// The channel the outbox trigger notifies: `<schema>.outbox`.
    pub(crate) fn channel(&self) -> String {
        format!("{}.outbox", self.name)
    }

    /// Creates the schema if needed and applies the migrations it lacks, in
    /// one transaction under an advisory lock, so that services starting
    /// together migrate once.
    pub(crate) async fn migrate(&self, pool: &PgPool) -> Result<Vec<Migration>, Error> {
        let doing = |what: &str| format!("migrating schema `{}`: {what}", self.name);
        let mut tx = pool
            .begin()
            .await
            .map_err(Error::database(doing("begin")))?;
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("tidings-postgres migrations {}", self.name))
            .execute(&mut *tx)
            .await
            .map_err(Error::database(doing("taking the migration lock")))?;
        let setup = format!(
            "create schema if not exists {q};
             create table if not exists {q}.migrations (
                 version integer primary key,
                 name text not null,
                 applied_at timestamptz not null default now()
             )",
            q = self.quoted
        );
        sqlx::raw_sql(&setup)
            .execute(&mut *tx)
            .await
            .map_err(Error::database(doing("creating the schema")))?;
        let applied: Vec<(i32, String)> = sqlx::query_as(&format!(
            "select version, name from {}.migrations order by version",
            self.quoted
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(Error::database(doing("reading the applied migrations")))?;
        let mut ran = Vec::new();
        for m in MIGRATIONS {
            if let Some((_, found)) = applied.iter().find(|(v, _)| *v == m.version) {
                if found != m.name {
                    return Err(Error::MigrationMismatch {
                        schema: self.name.to_string(),
                        version: m.version,
                        found: found.clone(),
                        expected: m.name,
                    });
                }
                continue;
            }
            let sql = format!("set local search_path to {};\n{}", self.quoted, m.sql);
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(Error::database(doing(&format!(
                    "applying migration {} ({})",
                    m.version, m.name
                ))))?;
            sqlx::query(&format!(
                "insert into {}.migrations (version, name) values ($1, $2)",
                self.quoted
            ))
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(Error::database(doing("recording a migration")))?;
            ran.push(*m);
        }
        tx.commit()
            .await
            .map_err(Error::database(doing("commit")))?;
        Ok(ran)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert_eq!(
            Schema::new(DEFAULT_SCHEMA).unwrap().quoted,
            Schema::default().quoted
        );
        for ok in ["tidings", "_x", "app_events2"] {
            assert!(Schema::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Tidings",
            "1x",
            "a-b",
            "a\"; drop table x; --",
            "pg_catalog",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(Schema::new(bad), Err(Error::InvalidSchema { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn migrations_are_numbered_in_order_and_match_their_files() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
            assert!(m
                .sql
                .contains(&format!("migration {}: the {}", m.version, m.name)));
        }
    }
}
