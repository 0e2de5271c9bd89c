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
    // UPDATE for the units a fulfilment ships.
    ("order_lines", "SELECT, INSERT, UPDATE"),
    ("fulfilments", "SELECT, INSERT"),
    ("fulfilment_lines", "SELECT, INSERT"),
    ("returns", "SELECT, INSERT"),
    ("return_lines", "SELECT, INSERT"),
    ("stock_movements", "SELECT, INSERT"),
    // DELETE for the scheduled purge of expired keys.
    ("idempotency_keys", "SELECT, INSERT, UPDATE, DELETE"),
    // A caller's count of keys: made by its first key, changed by every key stored or purged.
    ("idempotency_key_counts", "SELECT, INSERT, UPDATE"),
    // DELETE for the retention of delivered events.
    ("events", "SELECT, INSERT, DELETE"),
    ("event_resources", "SELECT, INSERT, UPDATE"),
    ("event_deliveries", "SELECT, UPDATE"),
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
/// shorter, and the schema stays as it is (the migrations only ever add). With `app` (a user name), the API's
/// user is then set up by [`grant_app_role`].
pub async fn migrate(options: PgConnectOptions, app: Option<&str>) -> Result<usize, sqlx::Error> {
    let mut conn = options.connect().await?;
    let migrator = sqlx::migrate::Migrator {
        migrations: MIGRATOR.migrations.clone(),
        ignore_missing: true,
        ..sqlx::migrate::Migrator::DEFAULT
    };
    let mut result = migrator.run(&mut conn).await.map_err(sqlx::Error::from);
    if let (Ok(()), Some(user)) = (&result, app) {
        result = grant_app_role(&mut conn, user).await;
    }
    let applied = applied_migrations(&mut conn).await;
    let _ = conn.close().await;
    result?;
    applied
}

/// The role of RDS and Aurora whose members log in with IAM tokens (and with nothing else).
const IAM_LOGIN_ROLE: &str = "rds_iam";

/// Sets up the API's user in one transaction: creates it if needed, with no password (a password left by an
/// earlier release is removed), grants it [`APP_GRANTS`] and nothing else, and, where the server has the
/// `rds_iam` role (RDS and Aurora), makes it a member: it then logs in with IAM tokens only, which the RDS Proxy
/// presents on its behalf. No secret exists for this user anywhere.
pub async fn grant_app_role(conn: &mut PgConnection, user: &str) -> Result<(), sqlx::Error> {
    let role = quote_identifier(user);
    let mut tx = conn.begin().await?;
    let exists = |name: &str| {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(name.to_owned())
    };
    if !exists(user).fetch_one(&mut *tx).await? {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
            .execute(&mut *tx)
            .await?;
    }
    // Only a superuser may even mention the SUPERUSER attribute; the master user of RDS and Aurora is not
    // one (and a role it creates cannot be a superuser anyway).
    let superuser: bool = sqlx::query_scalar("SELECT current_setting('is_superuser') = 'on'")
        .fetch_one(&mut *tx)
        .await?;
    let nosuperuser = if superuser { "NOSUPERUSER " } else { "" };
    let mut script = format!(
        "ALTER ROLE {role} WITH LOGIN {nosuperuser}NOCREATEDB NOCREATEROLE PASSWORD NULL;\n\
         GRANT USAGE ON SCHEMA public TO {role};\n"
    );
    for (table, privileges) in APP_GRANTS {
        let table = quote_identifier(table);
        script.push_str(&format!("REVOKE ALL ON {table} FROM {role};\n"));
        if !privileges.is_empty() {
            script.push_str(&format!("GRANT {privileges} ON {table} TO {role};\n"));
        }
    }
    if exists(IAM_LOGIN_ROLE).fetch_one(&mut *tx).await? {
        script.push_str(&format!("GRANT {IAM_LOGIN_ROLE} TO {role};\n"));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
