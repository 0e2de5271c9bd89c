//! The integration tests of the function binaries, in one test binary (`it`): each module was a test binary of
//! its own. One module, or one test, by its path: `cargo test -p functions --test it template::`.
//!
//! The modules' tests share a process, so they run beside each other: the ones that load the machine or the
//! database server (the end-to-end run) or hold answers to wall-clock bounds (the publisher killed half-way,
//! a job's stop on SIGTERM) take [`HEAVY`] and run alone among such tests; the rest run in parallel.

mod e2e;
mod publish;
mod stack;
mod startup;
mod template;

/// One heavy or timing-sensitive test at a time, in the whole binary (see the crate's description). A tokio
/// mutex: held across `.await` by tests of different runtimes (a plain `#[test]` takes it with
/// `blocking_lock`), and released by a test that fails while holding it.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
