//! `GET /products/{id}`: read one product.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::GetProduct).await
}
