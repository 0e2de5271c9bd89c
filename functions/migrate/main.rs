//! Applies the migrations in `migrations/` to `DATABASE_URL`, creating the database if it does not exist.
//! Run it before the functions are served or deployed; functions never migrate on a cold start.

use std::str::FromStr;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    PgConnectOptions::from_str(&url).map_err(|_| "DATABASE_URL is not a valid postgres:// URL")?;
    if !sqlx::Postgres::database_exists(&url).await? {
        sqlx::Postgres::create_database(&url).await?;
        eprintln!("migrate: created the database");
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    let migrator = &inventory::postgres::MIGRATOR;
    migrator.run(&pool).await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await?;
    eprintln!(
        "migrate: {applied} of {} migrations applied, schema up to date",
        migrator.iter().count()
    );
    pool.close().await;
    Ok(())
}
