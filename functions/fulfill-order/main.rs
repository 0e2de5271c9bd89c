//! `POST /orders/{id}/fulfill`: fulfil a pending order, shipping its stock.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::FulfillOrder).await
}
