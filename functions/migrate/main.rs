//! Applies the migrations in `migrations/`.
//!
//! - On Lambda (as the handler of the template's `Custom::Migrations` resource, on every deploy that
//!   changes this function): to the Aurora cluster endpoint, with the master credentials from Secrets
//!   Manager and TLS verified against the Amazon RDS roots (see `inventory::deploy`).
//! - Anywhere else: to `DATABASE_URL`, creating the database if it does not exist.
//!
//! Functions never migrate on a cold start.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgConnection};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return inventory::deploy::run_lambda().await;
    }
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    PgConnectOptions::from_str(&url).map_err(|_| "DATABASE_URL is not a valid postgres:// URL")?;
    if !sqlx::Postgres::database_exists(&url).await? {
        sqlx::Postgres::create_database(&url).await?;
        eprintln!("migrate: created the database");
    }
    let mut conn = PgConnection::connect(&url).await?;
    let migrator = &inventory::postgres::MIGRATOR;
    migrator.run(&mut conn).await?;
    let applied = inventory::postgres::schema::applied_migrations(&mut conn).await?;
    eprintln!(
        "migrate: {applied} of {} migrations applied, schema up to date",
        migrator.iter().count()
    );
    conn.close().await?;
    Ok(())
}
