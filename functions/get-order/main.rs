//! `GET /orders/{id}`: read one order.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    inventory::bootstrap::run(inventory::http::Endpoint::GetOrder).await
}
