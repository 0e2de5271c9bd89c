//! `GET /openapi.json`, `GET /swagger/` and its assets: the API's documentation.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run_docs().await
}
