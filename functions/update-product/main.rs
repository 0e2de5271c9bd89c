//! `PATCH /products/{id}`: change a product's catalogue fields.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::UpdateProduct).await
}
