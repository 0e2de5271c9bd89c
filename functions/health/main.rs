//! `GET /health`: liveness and a database round trip.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::Health).await
}
