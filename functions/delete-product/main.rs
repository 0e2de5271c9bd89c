//! `DELETE /products/{id}`: remove a product from the catalogue.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::DeleteProduct).await
}
