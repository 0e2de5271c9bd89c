//! The integration tests of `inventory`, in one test binary (`it`): each module was a test binary of its own,
//! and `common` is compiled once for all of them. One module, or one test, by its path:
//! `cargo test -p inventory --test it races::` or `... --test it races::buyers_of_several_units_never_oversell`.
//!
//! The modules' tests share a process, so they run beside each other: what would disturb a neighbour, or be
//! disturbed by one (many connections, a server of its own, bounds on wall-clock time), takes
//! [`common::HEAVY`] and runs alone among such tests; the rest run in parallel as before. Nothing here changes
//! the environment or other process-wide state, but for the one log capture of `common::logs`.

mod common;

mod auth;
mod crash;
mod deploy;
mod failures;
mod generated;
mod handlers;
mod layers;
mod openapi;
mod outbox;
mod postgres;
mod races;
mod services;
