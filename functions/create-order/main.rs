//! `POST /orders`: place an order, reserving its stock.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::CreateOrder).await
}
