//! The API user's password is never logged: not by a Postgres server logging every statement (and every
//! statement that fails), nor by sqlx or this crate through `tracing`. Each test runs its own throwaway
//! Postgres cluster (`initdb` into a temporary folder, on a free port), configured to log everything, and
//! still checks that the user logs in with its password over SCRAM.
//!
//! The cluster (`common::cluster`) needs the Postgres 15 server binaries (`POSTGRES_BIN`, by default
//! `/usr/lib/postgresql/15/bin`); run as root, they run as the `postgres` OS user. Without them the tests
//! fail: they never skip.

mod common;

use sqlx::{Connection, PgConnection};

use inventory::postgres::schema;

use common::cluster::Cluster;

/// What the clusters of these tests log: every statement, every statement that raises any message, and
/// every connection with how it was authenticated.
const LOGGING: &str = "logging_collector = off\n\
                       log_statement = 'all'\n\
                       log_min_error_statement = debug5\n\
                       log_connections = on";

/// The distinctive passwords of a test: a random marker in text no statement or log would hold otherwise.
/// Checking the marker alone too catches the password logged in any quoted or escaped form.
fn secret(label: &str) -> (String, String) {
    let marker = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    (format!("Sekr3t-{label}-{marker}-pw"), marker)
}

#[tokio::test]
async fn the_api_users_password_is_in_no_log_and_logs_in_over_scram() {
    capture::install();
    let cluster = Cluster::start("secrets-owner", LOGGING);
    let admin = cluster.options("postgres", None);
    let user = "inventory_app";

    // Not vacuous: a statement's text shows up in both the server's log and the captured events.
    let canary = format!("canary-{}", secret("canary").1);
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT '{canary}'")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(cluster.log().contains(&canary), "{}", cluster.log());
    assert!(
        capture::text().contains(&canary),
        "the captured events hold statements"
    );

    // As the migrate function does on every deploy: the first creates the user, the next sets it again
    // (here with a new password, as after a rotation of the secret).
    let (first, first_marker) = secret("first");
    let (second, second_marker) = secret("second");
    let applied = schema::migrate(admin.clone(), Some((user, &first)))
        .await
        .unwrap();
    assert!(applied > 0);
    let applied_again = schema::migrate(admin.clone(), Some((user, &second)))
        .await
        .unwrap();
    assert_eq!(applied_again, applied);

    // The user logs in with the current password only, over SCRAM (pg_hba.conf allows nothing else).
    let login = cluster.options(user, Some(&second));
    let mut as_app = PgConnection::connect_with(&login).await.unwrap();
    let me: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut as_app)
        .await
        .unwrap();
    assert_eq!(me, user);
    as_app.close().await.unwrap();
    for wrong in [first.as_str(), "not-the-password"] {
        let refused = PgConnection::connect_with(&cluster.options(user, Some(wrong)))
            .await
            .unwrap_err();
        assert_eq!(
            refused
                .as_database_error()
                .and_then(|e| e.code())
                .as_deref(),
            Some("28P01"),
            "{refused}"
        );
    }
    let log = cluster.log();
    assert!(
        log.contains(&format!(
            "connection authenticated: identity=\"{user}\" method=scram-sha-256"
        )),
        "{log}"
    );

    // The server stored the verifier sent, and the user has what it should.
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    let (stored, can_login, superuser, createdb, createrole): (String, bool, bool, bool, bool) =
        sqlx::query_as(
            "SELECT rolpassword, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole \
             FROM pg_authid WHERE rolname = $1",
        )
        .bind(user)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    assert_eq!(
        (can_login, superuser, createdb, createrole),
        (true, false, false, false)
    );
    conn.close().await.unwrap();

    // What was logged: the grants, but neither the passwords nor (the connected user being a superuser
    // here, who may turn statement logging off) the ALTER ROLE with the verifier.
    let log = cluster.log();
    let events = capture::text();
    assert!(
        log.contains("GRANT SELECT, INSERT, UPDATE, DELETE ON \"products\" TO \"inventory_app\"")
    );
    assert!(log.contains("SET LOCAL log_statement = 'none'"), "{log}");
    assert!(!log.contains("SCRAM-SHA-256$"), "{log}");
    assert!(events.contains("GRANT USAGE ON SCHEMA public"));
    for text in [&first, &first_marker, &second, &second_marker] {
        assert!(
            !log.contains(text.as_str()),
            "the server logged {text}:\n{log}"
        );
        assert!(!events.contains(text.as_str()), "an event holds {text}");
    }
}

/// Where the connected user may not turn statement logging off (the master user of RDS or Aurora is not a
/// superuser), the refusal does not abort the transaction, and what the server logs (the statements, and
/// the one that fails with its error) holds the verifier at most, never the password.
#[tokio::test]
async fn where_logging_stays_on_the_server_logs_no_password_either() {
    capture::install();
    let cluster = Cluster::start("secrets-not-superuser", LOGGING);
    let admin = cluster.options("postgres", None);
    let (migrator_password, _) = secret("migrator");
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    for statement in [
        format!("CREATE ROLE migrator LOGIN CREATEROLE PASSWORD '{migrator_password}'"),
        "CREATE DATABASE inventory OWNER migrator".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    let as_migrator = cluster
        .options("migrator", Some(&migrator_password))
        .database("inventory");
    let (password, marker) = secret("app");
    let outcome = schema::migrate(as_migrator, Some(("inventory_app", &password))).await;

    let log = cluster.log();
    let events = capture::text();
    // The refusal was met, and the transaction went on past it to the ALTER ROLE, which was logged.
    assert!(
        log.contains("permission denied to set parameter \"log_statement\""),
        "{log}"
    );
    assert!(
        log.contains("ALTER ROLE \"inventory_app\" WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD 'SCRAM-SHA-256$4096:"),
        "{log}"
    );
    // A migrator that is not a superuser (as on RDS) sets the API's user up all the same.
    outcome.expect("the migrations and the API's user, as a migrator that is not a superuser");
    let login = cluster
        .options("inventory_app", Some(&password))
        .database("inventory");
    PgConnection::connect_with(&login)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    for text in [&password, &marker] {
        assert!(
            !log.contains(text.as_str()),
            "the server logged {text}:\n{log}"
        );
        assert!(!events.contains(text.as_str()), "an event holds {text}");
    }
}

/// RFC 7677's verifier for "pencil" (the one `schema.rs`'s unit test expects it to compute for that salt)
/// is one Postgres accepts, and logs "pencil" in with over SCRAM: so the server agrees with the computation.
#[tokio::test]
async fn postgres_logs_in_with_rfc_7677s_verifier() {
    let cluster = Cluster::start("secrets-rfc7677", LOGGING);
    let mut conn = PgConnection::connect_with(&cluster.options("postgres", None))
        .await
        .unwrap();
    let verifier = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
                    wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE rfc_user LOGIN PASSWORD '{verifier}'"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let stored: String = sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind("rfc_user")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, verifier, "stored as it is");
    conn.close().await.unwrap();

    // sqlx checks the server's signature too, which proves the ServerKey.
    PgConnection::connect_with(&cluster.options("rfc_user", Some("pencil")))
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let refused = PgConnection::connect_with(&cluster.options("rfc_user", Some("pencil2")))
        .await
        .unwrap_err();
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("28P01"),
        "{refused}"
    );
}

/// Every `tracing` event and span of the test binary, of every target and level, as text: the global
/// default subscriber, so that events from any thread or task are captured. (No `tracing-subscriber`: a
/// minimal `Subscriber` is enough.)
mod capture {
    use std::fmt::{Debug, Write as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::level_filters::LevelFilter;
    use tracing::span::{Attributes, Id, Record};
    use tracing::subscriber::Interest;
    use tracing::{Event, Metadata, Subscriber};

    static TEXT: Mutex<String> = Mutex::new(String::new());

    pub fn install() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            assert_eq!(
                tracing::level_filters::STATIC_MAX_LEVEL,
                LevelFilter::TRACE,
                "no event may be compiled out"
            );
            tracing::subscriber::set_global_default(Capture {
                next_span: AtomicU64::new(1),
            })
            .expect("the only global subscriber");
        });
    }

    /// Everything captured so far, an event or span a line.
    pub fn text() -> String {
        TEXT.lock().unwrap().clone()
    }

    struct Capture {
        next_span: AtomicU64,
    }

    struct Line(String);

    impl Visit for Line {
        fn record_str(&mut self, field: &Field, value: &str) {
            let _ = write!(self.0, " {}={value}", field.name());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn line(metadata: &Metadata<'_>, kind: &str) -> Line {
        Line(format!(
            "{} {} {kind} {}:",
            metadata.level(),
            metadata.target(),
            metadata.name()
        ))
    }

    fn keep(line: Line) {
        let mut text = TEXT.lock().unwrap();
        text.push_str(&line.0);
        text.push('\n');
    }

    impl Subscriber for Capture {
        fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
            Interest::always()
        }

        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }

        fn max_level_hint(&self) -> Option<LevelFilter> {
            Some(LevelFilter::TRACE)
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let mut line = line(span.metadata(), "span");
            span.record(&mut line);
            keep(line);
            Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
        }

        fn record(&self, _: &Id, values: &Record<'_>) {
            let mut line = Line("span record:".into());
            values.record(&mut line);
            keep(line);
        }

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let mut line = line(event.metadata(), "event");
            event.record(&mut line);
            keep(line);
        }

        fn enter(&self, _: &Id) {}

        fn exit(&self, _: &Id) {}
    }
}
