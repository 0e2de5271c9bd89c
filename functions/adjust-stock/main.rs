//! `POST /products/{id}/stock-adjustments`: change a product's on-hand stock.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::AdjustStock).await
}
