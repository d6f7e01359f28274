//! What the unit tests of the store share: a migrated database in a directory,
//! resources naming services, and a seeded generator for their data sets.

use super::config::SqliteConfig;
use super::schema::open_writer;
use sqlx::sqlite::SqliteConnection;
use std::path::Path;

/// A writer connection on a new database file in `dir`, schema applied.
pub(crate) async fn database(dir: &Path) -> SqliteConnection {
    let config = SqliteConfig {
        path: dir.join("test.db").display().to_string(),
        ..Default::default()
    };
    open_writer(&config).await.expect("open a test database")
}

/// One resource set per `(set, service)`, holding the one attribute `service.name`.
pub(crate) async fn add_services(conn: &mut SqliteConnection, sets: &[(&str, &str)]) {
    for (n, (set, service)) in sets.iter().enumerate() {
        let attribute = format!("attr-{set}");
        sqlx::query("INSERT INTO resource_attributes VALUES (?, 'service.name', ?, 'Str')")
            .bind(&attribute)
            .bind(service)
            .execute(&mut *conn)
            .await
            .expect("insert a resource attribute");
        sqlx::query("INSERT INTO resource_set_members VALUES (?, ?, ?)")
            .bind(set)
            .bind(n as i64)
            .bind(&attribute)
            .execute(&mut *conn)
            .await
            .expect("insert a resource set member");
    }
}

/// A small linear congruential generator, so a test's data set is the same every run.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// The next number below `below`.
    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}
