//! A private Postgres cluster for tests that need a server of their own: one they may configure (to log
//! everything, say), crash and start again. `initdb` into a temporary folder, on a free port; stopped and
//! removed when dropped (also when a test fails, which then prints the server's log).
//!
//! It needs the Postgres server binaries (`POSTGRES_BIN`, by default `/usr/lib/postgresql/15/bin`); run as
//! root, they run as the `postgres` OS user. Without them the tests fail: they never skip.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// A private Postgres cluster. The superuser `postgres` logs in without a password (over the Unix socket and
/// over TCP from 127.0.0.1); every other user logs in over SCRAM-SHA-256.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    /// The OS user the server runs as, when the tests run as root (which Postgres refuses to run as).
    run_as: Option<&'static str>,
    /// Whether the server is (as far as this handle knows) running: what `drop` has to stop.
    running: bool,
}

impl Cluster {
    /// Creates and starts a cluster in a new temporary folder whose name holds `label`. `extra_settings` are
    /// lines of `postgresql.conf` added after the ones every cluster gets (listen address, port, socket
    /// folder, SCRAM passwords, `fsync = off`).
    pub fn start(label: &str, extra_settings: &str) -> Self {
        let bin = bin_dir();
        assert!(
            bin.join("initdb").is_file() && bin.join("pg_ctl").is_file(),
            "no Postgres server binaries in {} (set POSTGRES_BIN to their folder): these tests need them",
            bin.display()
        );
        let dir = std::env::temp_dir().join(format!("inventory-{label}-{}", unique()));
        std::fs::create_dir(&dir).unwrap();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let root = id(&["-u"]) == "0";
        let mut cluster = Self {
            dir,
            port,
            run_as: root.then_some("postgres"),
            running: false,
        };
        if root {
            let uid = id(&["-u", "postgres"]).parse().unwrap();
            let gid = id(&["-g", "postgres"]).parse().unwrap();
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid)).unwrap();
        }
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                // English messages, which the tests read.
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        let settings = format!(
            "\n# inventory's tests/it/common/cluster.rs ({label})\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{dir}'\n\
             password_encryption = 'scram-sha-256'\n\
             fsync = off\n\
             {extra_settings}\n",
            dir = cluster.dir.display()
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        cluster.start_again();
        cluster
    }

    /// Kills the server as a crash would: `pg_ctl -m immediate stop` ends the postmaster and every backend at
    /// once, with no checkpoint; the next start recovers from the WAL. Blocks until the server is gone.
    pub fn crash(&mut self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        self.running = false;
    }

    /// Starts the server (again, after [`Cluster::crash`]) on the same port, and waits until it accepts
    /// connections (at most 60 s).
    pub fn start_again(&mut self) {
        let data = self.data();
        let log = self.log_path();
        // Set first: a start that fails may still have left a server running, which drop then stops.
        self.running = true;
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Options for `user` on the `postgres` database, over TCP (so that pg_hba.conf's `host` lines apply).
    pub fn options(&self, user: &str, password: Option<&str>) -> PgConnectOptions {
        let options = PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(user)
            .database("postgres")
            .ssl_mode(PgSslMode::Disable);
        match password {
            Some(password) => options.password(password),
            None => options,
        }
    }

    fn command(&self, program: &str) -> Command {
        let program = bin_dir().join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir(&self.dir);
        command
    }

    fn run(&self, program: &str, args: &[&OsStr]) -> Output {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let stopped = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "fast", "-w", "stop"])
                .output();
            if !stopped.is_ok_and(|output| output.status.success()) {
                eprintln!("could not stop the cluster in {}", self.dir.display());
            }
        }
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.log_path())
        {
            eprintln!("server log of {}:\n{log}", self.dir.display());
        }
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("could not remove {}: {error}", self.dir.display());
        }
    }
}

/// Text no other folder of this or another test process has in its name.
fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:x}-{:x}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn bin_dir() -> PathBuf {
    std::env::var_os("POSTGRES_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("/usr/lib/postgresql/15/bin").to_owned())
}

/// `id`'s answer for `args`.
fn id(args: &[&str]) -> String {
    let output = Command::new("id").args(args).output().unwrap();
    assert!(output.status.success(), "id {args:?} failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
