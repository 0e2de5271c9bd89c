//! A private Postgres cluster for tests that must crash or restart a server (moved here from tests/secrets.rs).
