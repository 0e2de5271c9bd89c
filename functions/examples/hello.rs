//! The smallest possible Lambda HTTP function: answers every request with `hello`.
//!
//! It is not deployed. It is the baseline for cold-start measurements (`scripts/cold-start`): the start-up cost
//! of the runtime alone, which a real function's start (logging, configuration, pool, credentials) is compared with.

use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_request: Request| async {
        Ok::<_, Error>("hello")
    }))
    .await
}
