//! `POST /orders/{id}/cancel`: cancel a pending order, releasing its stock.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::CancelOrder).await
}
