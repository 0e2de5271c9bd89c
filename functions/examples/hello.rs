//! The smallest possible Lambda HTTP function: answers every request with `hello`.
//!
//! It is not deployed. It is the baseline for cold-start measurements (`scripts/cold-start`): the start-up cost
//! of the runtime alone, which a real function's start (logging, configuration, pool, credentials) is compared with.

//!
//! Like for like: it starts the same runtime as the functions (`bootstrap::block_on`: one thread unless
//! `AWS_LAMBDA_MAX_CONCURRENCY` asks for more), so the comparison measures what a function does at start, not a
//! different runtime.

use lambda_http::{Error, Request, service_fn};

fn main() -> Result<(), Error> {
    inventory::bootstrap::block_on(lambda_http::run(service_fn(|_request: Request| async {
        Ok::<_, Error>("hello")
    })))
}
