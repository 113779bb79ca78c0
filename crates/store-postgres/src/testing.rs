//! Fresh databases for tests: one per test, dropped after it.

use tokio_postgres::NoTls;

/// Where tests reach a PostgreSQL server that lets them create databases, unless
/// `UNAVOCE_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test, dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    /// Its connection string.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database on the server at `UNAVOCE_TEST_POSTGRES_URL` (or
    /// [`DEFAULT_ADMIN_URL`]).
    pub async fn create() -> Result<TestDatabase, String> {
        let admin_url =
            std::env::var("UNAVOCE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
        let name = format!(
            "{PREFIX}{}_{}",
            jiff::Timestamp::now().as_second(),
            uuid::Uuid::new_v4().simple()
        );
        let shown = crate::display_url(&admin_url);
        let unreachable = |e: tokio_postgres::Error| {
            format!(
                "PostgreSQL is not reachable at {shown} ({e}): start it (`.ci/run` does), \
                 or point UNAVOCE_TEST_POSTGRES_URL at a server where tests may create databases"
            )
        };
        let (client, connection) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .map_err(unreachable)?;
        let connection = tokio::spawn(connection);
        drop_forgotten(&client).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(unreachable)?;
        drop(client);
        let _ = connection.await;
        Ok(TestDatabase {
            url: url_of(&admin_url, &name),
            name,
            admin_url,
        })
    }
}

/// `admin_url` with its database replaced by `name`.
fn url_of(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let server = match base.rsplit_once('/') {
        Some((server, _)) if server.contains("//") && server.len() > "postgres://".len() - 1 => {
            server
        }
        _ => base,
    };
    format!("{server}/{name}{query}")
}

impl TestDatabase {
    /// Keeps the database after this is gone (for a test whose data outlives a value,
    /// e.g. one folder per server process); the next [`TestDatabase::create`] after
    /// [`FORGOTTEN_AFTER`] drops it.
    pub fn keep(self) -> String {
        let url = self.url.clone();
        std::mem::forget(self);
        url
    }
}

/// Every test database's name starts so, then its creation time (Unix seconds).
const PREFIX: &str = "unavoce_test_";

/// How old a test database is when it is taken as left behind.
pub const FORGOTTEN_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Drops test databases older than [`FORGOTTEN_AFTER`] (kept, or left by a test that
/// was killed); best effort.
async fn drop_forgotten(client: &tokio_postgres::Client) {
    let Ok(rows) = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&format!("{PREFIX}%")],
        )
        .await
    else {
        return;
    };
    let now = jiff::Timestamp::now().as_second();
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<i64>().ok());
        if created.is_some_and(|at| now - at > FORGOTTEN_AFTER.as_secs() as i64) {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // On a thread of its own: drop may run inside a runtime, which cannot block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await.ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test_database_url_names_the_new_database() {
        assert_eq!(
            super::url_of("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            super::url_of("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
    }
}
