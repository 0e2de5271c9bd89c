//! The schema's own upkeep, run by the migrate command and the migrate function (never by the API): the
//! migrations, and the database user the API connects as on AWS with exactly the privileges it needs.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::MIGRATOR;

/// What the API's user may do, table by table: everything the adapter's statements need, nothing more.
/// Every table of the schema is listed (a test holds the list to the migrations).
pub const APP_GRANTS: &[(&str, &str)] = &[
    ("products", "SELECT, INSERT, UPDATE, DELETE"),
    ("orders", "SELECT, INSERT, UPDATE"),
    ("order_lines", "SELECT, INSERT"),
    ("stock_movements", "SELECT, INSERT"),
    // DELETE for the scheduled purge of expired keys.
    ("idempotency_keys", "SELECT, INSERT, UPDATE, DELETE"),
    ("_sqlx_migrations", ""),
];

/// How many migrations the database has applied.
pub async fn applied_migrations(conn: &mut PgConnection) -> Result<usize, sqlx::Error> {
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(conn)
        .await?;
    Ok(applied as usize)
}

/// Applies the pending migrations over one connection and answers how many the database now has. Migrations
/// the database has but this code does not are accepted: a rollback runs the previous release, whose list is
/// shorter, and the schema stays as it is (the migrations only ever add). With `app` (user, password), the
/// API's user is then set up by [`grant_app_role`].
pub async fn migrate(
    options: PgConnectOptions,
    app: Option<(&str, &str)>,
) -> Result<usize, sqlx::Error> {
    let mut conn = options.connect().await?;
    let migrator = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations.clone(),
        ignore_missing: true,
        ..sqlx::migrate::Migrator::DEFAULT
    };
    let mut result = migrator.run(&mut conn).await.map_err(sqlx::Error::from);
    if let (Ok(()), Some((user, password))) = (&result, app) {
        result = grant_app_role(&mut conn, user, password).await;
    }
    let applied = applied_migrations(&mut conn).await;
    let _ = conn.close().await;
    result?;
    applied
}

/// Creates the API's user if needed, sets its password, and grants it [`APP_GRANTS`], in one transaction.
pub async fn grant_app_role(
    conn: &mut PgConnection,
    user: &str,
    password: &str,
) -> Result<(), sqlx::Error> {
    let role = quote_identifier(user);
    let mut tx = conn.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
            .execute(&mut *tx)
            .await?;
    }
    // A password cannot be a bound parameter here; it is quoted as a literal, and the server stores only
    // its SCRAM verifier.
    let password = password.replace('\'', "''");
    let mut script = format!(
        "ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}';\n\
         GRANT USAGE ON SCHEMA public TO {role};\n"
    );
    for (table, privileges) in APP_GRANTS {
        let table = quote_identifier(table);
        script.push_str(&format!("REVOKE ALL ON {table} FROM {role};\n"));
        if !privileges.is_empty() {
            script.push_str(&format!("GRANT {privileges} ON {table} TO {role};\n"));
        }
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
