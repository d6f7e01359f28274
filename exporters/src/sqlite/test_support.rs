//! What the unit tests of the store share: a migrated database in a directory, and
//! resources naming services.

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
