//! `GET /orders`: list orders.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::ListOrders).await
}
