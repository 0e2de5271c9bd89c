//! `GET /products/{id}/stock-movements`: read a product's stock ledger.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::ListStockMovements).await
}
