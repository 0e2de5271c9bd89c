//! What the race tests share: a pool with a connection per client. (One race at a time: each holds
//! [`super::HEAVY`].)

use std::time::Duration;

use inventory::domain::Deadline;
use inventory::postgres::PgStore;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A pool with a connection for every client, all opened before the race starts. (The pool options
/// `#[sqlx::test]` offers are capped well below that; only its database is used.)
pub async fn pool_for(clients: usize, _: PgPoolOptions, options: PgConnectOptions) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(clients as u32)
        .min_connections(clients as u32)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(super::served_options(options))
        .await
        .unwrap();
    let held: Vec<_> = futures_join(clients, |_| pool.acquire()).await;
    drop(held);
    pool
}

async fn futures_join<T, F: Future<Output = Result<T, sqlx::Error>>>(
    n: usize,
    f: impl Fn(usize) -> F,
) -> Vec<T> {
    let mut out = Vec::new();
    let futures: Vec<F> = (0..n).map(f).collect();
    for fut in futures {
        out.push(fut.await.unwrap());
    }
    out
}

/// The store of a race: its lock waits are bounded by the deadline alone. The default bound (a second) turns a
/// long lock queue into quick 503s, as it should in service; but what a race proves (no deadlock, no oversell,
/// one effect per key) must not depend on how fast this machine drains a queue of 64.
pub fn race_store(pool: PgPool) -> PgStore {
    PgStore::new(pool).with_lock_wait(Duration::from_secs(60))
}

pub fn long_deadline() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

/// A small deterministic generator, so a failing race can be replayed from its seed.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
