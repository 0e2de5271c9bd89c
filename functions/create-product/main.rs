//! `POST /products`: create a product.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::CreateProduct).await
}
