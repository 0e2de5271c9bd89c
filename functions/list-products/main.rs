//! `GET /products`: list products.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::ListProducts).await
}
