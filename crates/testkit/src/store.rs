//! A fresh store for each test, of the kind `UNAVOCE_TEST_STORE` names: `sqlite` (the
//! default) in a temporary folder, or `postgres` in a database of its own, dropped
//! after the test.

use std::ops::Deref;
use std::sync::Arc;

use unavoce_store::{SqliteLog, SqliteOptions, Store};
use unavoce_store_postgres::testing::TestDatabase;
use unavoce_store_postgres::{PgOptions, PgStore};

/// Which store the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// The store `UNAVOCE_TEST_STORE` names (`sqlite` when unset).
///
/// # Panics
/// On any other value, so a typo never runs the suite on the wrong store.
pub fn store_kind() -> StoreKind {
    match std::env::var("UNAVOCE_TEST_STORE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => StoreKind::Sqlite,
        Ok("postgres") => StoreKind::Postgres,
        Ok(other) => panic!("UNAVOCE_TEST_STORE={other:?}: say `sqlite` or `postgres`"),
    }
}

/// Settings for a test store, whichever its kind.
#[derive(Clone, Default)]
pub struct TestStoreOptions {
    pub sqlite: SqliteOptions,
    pub postgres: PgOptions,
}

/// A store made for one test. Dereferences to the store; [`TestStore::reopen`] closes
/// and opens it again on the same data.
pub struct TestStore {
    store: Arc<dyn Store>,
    sqlite: Option<Arc<SqliteLog>>,
    options: TestStoreOptions,
    /// The SQLite store's folder (also made for a PostgreSQL store: a test may keep
    /// files beside it).
    pub dir: tempfile::TempDir,
    database: Option<TestDatabase>,
}

impl TestStore {
    /// A fresh, empty store of the kind [`store_kind`] names, with default settings.
    pub async fn open() -> TestStore {
        TestStore::open_with(TestStoreOptions::default()).await
    }

    /// A fresh, empty store with these settings.
    pub async fn open_with(options: TestStoreOptions) -> TestStore {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let database = match store_kind() {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => Some(
                TestDatabase::create()
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            ),
        };
        let (store, sqlite) = open_on(&dir, database.as_ref(), &options).await;
        TestStore {
            store,
            sqlite,
            options,
            dir,
            database,
        }
    }

    /// Closes the store and opens it again on the same data, as a restart would.
    pub async fn reopen(self) -> TestStore {
        let options = self.options.clone();
        self.reopen_with(options).await
    }

    /// As [`TestStore::reopen`], with other settings.
    pub async fn reopen_with(mut self, options: TestStoreOptions) -> TestStore {
        self.options = options;
        self.store.close().await;
        let (store, sqlite) = open_on(&self.dir, self.database.as_ref(), &self.options).await;
        self.store = store;
        self.sqlite = sqlite;
        self
    }

    /// The store, shared.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The SQLite store, when that is the kind: for what only it has (its file).
    pub fn sqlite(&self) -> Option<&Arc<SqliteLog>> {
        self.sqlite.as_ref()
    }

    /// Which kind it is.
    pub fn kind(&self) -> StoreKind {
        match self.database {
            Some(_) => StoreKind::Postgres,
            None => StoreKind::Sqlite,
        }
    }

    /// Everything the store holds, as bytes by place, to look for what must not be
    /// there: each file of the data folder (SQLite: `events.db` and its WAL), or each
    /// table's rows as text, `bytea` columns decoded (PostgreSQL: `table:events`, ...).
    pub async fn stored_bytes(&self) -> Vec<(String, Vec<u8>)> {
        match self.postgres_url() {
            None => std::fs::read_dir(self.dir.path())
                .expect("the data folder")
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| {
                    let bytes = std::fs::read(e.path()).expect("a data file");
                    (e.file_name().to_string_lossy().to_string(), bytes)
                })
                .collect(),
            Some(url) => tables_as_text(url).await,
        }
    }

    /// The place [`TestStore::stored_bytes`] names for the event log.
    pub fn log_place(&self) -> &'static str {
        match self.kind() {
            StoreKind::Sqlite => "events.db",
            StoreKind::Postgres => "table:events",
        }
    }

    /// The PostgreSQL database's connection string, when that is the kind.
    pub fn postgres_url(&self) -> Option<&str> {
        self.database.as_ref().map(|d| d.url.as_str())
    }
}

async fn open_on(
    dir: &tempfile::TempDir,
    database: Option<&TestDatabase>,
    options: &TestStoreOptions,
) -> (Arc<dyn Store>, Option<Arc<SqliteLog>>) {
    match database {
        None => {
            let log = Arc::new(
                SqliteLog::open(dir.path(), options.sqlite.clone()).expect("the SQLite store"),
            );
            (log.clone(), Some(log))
        }
        Some(database) => {
            let store = PgStore::open(&database.url, options.postgres.clone())
                .await
                .unwrap_or_else(|e| panic!("the PostgreSQL store at {}: {e}", database.url));
            (Arc::new(store), None)
        }
    }
}

impl Deref for TestStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

/// Every table of the database at `url`, its rows as text.
async fn tables_as_text(url: &str) -> Vec<(String, Vec<u8>)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the test database");
    tokio::spawn(connection);
    let columns = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = 'public' \
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .expect("the tables' columns");
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for row in columns {
        let (table, column, kind): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let text = match kind.as_str() {
            "bytea" => format!("coalesce(encode(\"{column}\", 'escape'), '')"),
            _ => format!("coalesce(\"{column}\"::text, '')"),
        };
        match tables.last_mut() {
            Some((name, texts)) if *name == table => texts.push(text),
            _ => tables.push((table, vec![text])),
        }
    }
    let mut places = Vec::new();
    for (table, texts) in tables {
        let sql = format!(
            "SELECT coalesce(string_agg({}, E'\\n'), '') FROM \"{table}\"",
            texts.join(" || ' ' || ")
        );
        let text: String = client
            .query_one(&sql, &[])
            .await
            .expect("a table's rows")
            .get(0);
        places.push((format!("table:{table}"), text.into_bytes()));
    }
    places
}
