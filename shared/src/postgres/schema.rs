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
///
/// The password itself never reaches the server, nor any SQL text that the server or sqlx could log: the
/// SCRAM-SHA-256 verifier Postgres would store for it is computed here (`scram_sha256_verifier`) and sent
/// instead, which Postgres stores as it is. Statement logging is also turned off for the rest of the
/// transaction before the `ALTER ROLE` where the connected user may do so (a superuser; on RDS and Aurora
/// the master user is not one, and the verifier is then logged as any statement would be: it is not the
/// password, but it is kept out of the logs where possible).
pub async fn grant_app_role(
    conn: &mut PgConnection,
    user: &str,
    password: &str,
) -> Result<(), sqlx::Error> {
    let role = quote_identifier(user);
    let verifier = scram_sha256_verifier(password)?;
    let mut tx = conn.begin().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        // No password yet: it gets one below, in the same transaction.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
            .execute(&mut *tx)
            .await?;
    }
    let mut script = format!("GRANT USAGE ON SCHEMA public TO {role};\n");
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
    // Last, so that only this statement (and the COMMIT) is left unlogged. A password cannot be a bound
    // parameter here; the verifier is quoted as a literal (it holds no quote: see `scram_verifier`).
    // Only a superuser may even mention the SUPERUSER attribute; the master user of RDS and Aurora is not
    // one (and a role it creates cannot be a superuser anyway).
    let superuser: bool = sqlx::query_scalar("SELECT current_setting('is_superuser') = 'on'")
        .fetch_one(&mut *tx)
        .await?;
    let nosuperuser = if superuser { "NOSUPERUSER " } else { "" };
    quiet_statement_logging(&mut tx).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {role} WITH LOGIN {nosuperuser}NOCREATEDB NOCREATEROLE PASSWORD '{verifier}'"
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The server settings that log statement texts, and their value that logs none.
const QUIET_LOGGING: &[(&str, &str)] = &[
    ("log_statement", "'none'"),
    ("log_min_duration_statement", "-1"),
];

/// Turns statement logging off until the end of `tx`, setting by setting, where the connected user may:
/// these settings are superuser-only (unless granted with `GRANT SET ON PARAMETER`), and a refusal is not
/// an error. Each attempt runs in a savepoint, so that a refusal does not abort the transaction.
async fn quiet_statement_logging(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    for (setting, value) in QUIET_LOGGING {
        let mut savepoint = tx.begin().await?;
        let set = format!("SET LOCAL {setting} = {value}");
        match sqlx::raw_sql(sqlx::AssertSqlSafe(set))
            .execute(&mut *savepoint)
            .await
        {
            Ok(_) => savepoint.commit().await?,
            Err(error) if is_insufficient_privilege(&error) => {
                tracing::debug!(setting, "not permitted to turn statement logging off");
                savepoint.rollback().await?;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn is_insufficient_privilege(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42501")
}

/// The iteration count of the verifiers: Postgres's own default (`scram_iterations`).
const SCRAM_ITERATIONS: u32 = 4096;

/// The length of the verifiers' random salt, in bytes: Postgres's own.
const SCRAM_SALT_LEN: usize = 16;

/// The SCRAM-SHA-256 verifier of `password`, with a random salt, exactly as Postgres stores it in
/// `pg_authid.rolpassword` (and accepts it in `ALTER ROLE ... PASSWORD`):
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802, RFC 7677).
///
/// Postgres prepares a password with SASLprep (RFC 4013) before hashing it, when it logs in as when it
/// makes a verifier, and SASLprep leaves an ASCII password as it is. The passwords Secrets Manager
/// generates are ASCII; any other one is refused here rather than hashed unprepared into a verifier that
/// might not match what a client would send. An empty password is refused too (Postgres would not set
/// one), and so is a NUL, which no Postgres client can send.
fn scram_sha256_verifier(password: &str) -> Result<String, sqlx::Error> {
    use ring::rand::SecureRandom as _;

    if password.is_empty() {
        return Err(sqlx::Error::InvalidArgument(
            "the API user's password is empty".into(),
        ));
    }
    if !password.is_ascii() {
        return Err(sqlx::Error::InvalidArgument(
            "the API user's password must be ASCII (as Secrets Manager generates them): Postgres \
             would prepare any other with SASLprep, which is not implemented here"
                .into(),
        ));
    }
    if password.contains('\0') {
        return Err(sqlx::Error::InvalidArgument(
            "the API user's password contains a NUL character".into(),
        ));
    }
    let mut salt = [0u8; SCRAM_SALT_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::other(
                "the system's random number generator failed",
            ))
        })?;
    Ok(scram_verifier(password.as_bytes(), &salt, SCRAM_ITERATIONS))
}

/// The SCRAM-SHA-256 verifier of an already prepared password, for `salt` and `iterations`. Only the
/// characters of the prefix, decimal digits and the standard base64 alphabet appear in it: no quote.
fn scram_verifier(password: &[u8], salt: &[u8], iterations: u32) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use ring::{digest, hmac, pbkdf2};

    let rounds = std::num::NonZeroU32::new(iterations).expect("at least one iteration");
    let mut salted = [0u8; digest::SHA256_OUTPUT_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password,
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key),
    )
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    /// RFC 7677's example: user "user", password "pencil", 4096 iterations. Its StoredKey and ServerKey
    /// are those of its exchange (RFC 7677 section 3); Postgres stores exactly this verifier for "pencil"
    /// with that salt (checked against a server by `tests/secrets.rs`, which logs in with a verifier made
    /// here).
    #[test]
    fn the_verifier_of_rfc_7677s_example() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        assert_eq!(
            scram_verifier(b"pencil", &salt, 4096),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
             wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn a_verifier_has_postgres_s_shape_and_a_fresh_salt() {
        let password = "it's-a-secret";
        let verifier = scram_sha256_verifier(password).unwrap();
        let (method, rest) = verifier.split_once('$').unwrap();
        assert_eq!(method, "SCRAM-SHA-256");
        let (params, keys) = rest.split_once('$').unwrap();
        let (iterations, salt) = params.split_once(':').unwrap();
        assert_eq!(iterations, "4096");
        assert_eq!(STANDARD.decode(salt).unwrap().len(), 16);
        let (stored_key, server_key) = keys.split_once(':').unwrap();
        assert_eq!(STANDARD.decode(stored_key).unwrap().len(), 32);
        assert_eq!(STANDARD.decode(server_key).unwrap().len(), 32);
        assert!(!verifier.contains(password));
        assert!(!verifier.contains('\''));
        assert_eq!(
            verifier,
            scram_verifier(password.as_bytes(), &STANDARD.decode(salt).unwrap(), 4096)
        );

        let again = scram_sha256_verifier(password).unwrap();
        assert_ne!(verifier, again, "every verifier has its own salt");
    }

    #[test]
    fn passwords_postgres_would_prepare_otherwise_are_refused() {
        for password in ["pässword", "password\u{00A0}", "", "pass\0word"] {
            let error = scram_sha256_verifier(password).unwrap_err();
            assert!(
                matches!(error, sqlx::Error::InvalidArgument(_)),
                "{password:?}: {error}"
            );
            if !password.is_empty() {
                assert!(!error.to_string().contains(password), "{error}");
            }
        }
    }
}
