//! The route table: the one place that says which endpoint answers which method and path, which function
//! binary serves it, and which access scope a caller needs for it. The function binaries, their `[[bin]]`
//! entries, the `cargo lambda watch` router and the template's API functions are generated from it
//! (`scripts/generate`, checked by `shared/tests/it/generated.rs`); the OpenAPI document is checked against it.

/// Every endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    CreateProduct,
    ListProducts,
    GetProduct,
    UpdateProduct,
    DeleteProduct,
    AdjustStock,
    ListStockMovements,
    CreateOrder,
    ListOrders,
    GetOrder,
    CancelOrder,
    FulfillOrder,
    CreateFulfilment,
    ListFulfilments,
    CreateReturn,
    ListReturns,
    ExtendHold,
    ListEvents,
    Health,
    /// The OpenAPI document and the Swagger UI: several routes, one function.
    Docs,
}

/// Where an endpoint lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    /// Name of the function binary (and Lambda function) that serves it.
    pub function: &'static str,
    pub method: &'static str,
    /// Path template, with `{id}` for the path parameter.
    pub path: &'static str,
}

/// An access scope: what a caller's bearer token must carry to use a route (least privilege, in the manner
/// of Shopify's access scopes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    ProductsRead,
    ProductsWrite,
    StockRead,
    StockWrite,
    OrdersRead,
    OrdersWrite,
    OrdersFulfil,
    EventsRead,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Self::ProductsRead,
        Self::ProductsWrite,
        Self::StockRead,
        Self::StockWrite,
        Self::OrdersRead,
        Self::OrdersWrite,
        Self::OrdersFulfil,
        Self::EventsRead,
    ];

    /// Its name, as tokens carry it (behind a prefix, such as Cognito's resource server identifier).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProductsRead => "products.read",
            Self::ProductsWrite => "products.write",
            Self::StockRead => "stock.read",
            Self::StockWrite => "stock.write",
            Self::OrdersRead => "orders.read",
            Self::OrdersWrite => "orders.write",
            Self::OrdersFulfil => "orders.fulfil",
            Self::EventsRead => "events.read",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::ProductsRead => "Read the catalogue and stock levels",
            Self::ProductsWrite => "Create, change and delete products",
            Self::StockRead => "Read the stock ledger",
            Self::StockWrite => "Adjust stock",
            Self::OrdersRead => "Read orders",
            Self::OrdersWrite => {
                "Place and cancel orders, take back what shipped, and extend their holds"
            }
            Self::OrdersFulfil => "Fulfil orders",
            Self::EventsRead => "Follow the event feed",
        }
    }
}

/// The scope a caller needs to see an event in the feed, besides `events.read`: the one that reads the
/// resource it carries (an order, a product, a stock movement).
pub fn event_scope(event_type: crate::domain::event::EventType) -> Scope {
    use crate::domain::event::EventType::*;
    match event_type {
        OrderPlaced
        | OrderCancelled
        | OrderExpired
        | OrderFulfilled
        | OrderPartiallyFulfilled
        | OrderReturned
        | OrderHoldExtended => Scope::OrdersRead,
        ProductCreated | ProductUpdated | ProductDeleted | StockLow => Scope::ProductsRead,
        StockAdjusted => Scope::StockRead,
    }
}

impl Endpoint {
    /// The scope a caller needs for the endpoint; `None` for the public ones (health and the documentation).
    pub fn scope(self) -> Option<Scope> {
        Some(match self {
            Self::ListProducts | Self::GetProduct => Scope::ProductsRead,
            Self::CreateProduct | Self::UpdateProduct | Self::DeleteProduct => Scope::ProductsWrite,
            Self::ListStockMovements => Scope::StockRead,
            Self::AdjustStock => Scope::StockWrite,
            Self::ListOrders | Self::GetOrder | Self::ListFulfilments | Self::ListReturns => {
                Scope::OrdersRead
            }
            Self::CreateOrder | Self::CancelOrder | Self::CreateReturn | Self::ExtendHold => {
                Scope::OrdersWrite
            }
            Self::FulfillOrder | Self::CreateFulfilment => Scope::OrdersFulfil,
            Self::ListEvents => Scope::EventsRead,
            Self::Health | Self::Docs => return None,
        })
    }
}

const fn route(
    endpoint: Endpoint,
    function: &'static str,
    method: &'static str,
    path: &'static str,
) -> Route {
    Route {
        endpoint,
        function,
        method,
        path,
    }
}

pub const ROUTES: &[Route] = &[
    route(
        Endpoint::CreateProduct,
        "create-product",
        "POST",
        "/products",
    ),
    route(Endpoint::ListProducts, "list-products", "GET", "/products"),
    route(Endpoint::GetProduct, "get-product", "GET", "/products/{id}"),
    route(
        Endpoint::UpdateProduct,
        "update-product",
        "PATCH",
        "/products/{id}",
    ),
    route(
        Endpoint::DeleteProduct,
        "delete-product",
        "DELETE",
        "/products/{id}",
    ),
    route(
        Endpoint::AdjustStock,
        "adjust-stock",
        "POST",
        "/products/{id}/stock-adjustments",
    ),
    route(
        Endpoint::ListStockMovements,
        "list-stock-movements",
        "GET",
        "/products/{id}/stock-movements",
    ),
    route(Endpoint::CreateOrder, "create-order", "POST", "/orders"),
    route(Endpoint::ListOrders, "list-orders", "GET", "/orders"),
    route(Endpoint::GetOrder, "get-order", "GET", "/orders/{id}"),
    route(
        Endpoint::CancelOrder,
        "cancel-order",
        "POST",
        "/orders/{id}/cancel",
    ),
    route(
        Endpoint::FulfillOrder,
        "fulfill-order",
        "POST",
        "/orders/{id}/fulfill",
    ),
    route(
        Endpoint::CreateFulfilment,
        "create-fulfilment",
        "POST",
        "/orders/{id}/fulfilments",
    ),
    route(
        Endpoint::ListFulfilments,
        "list-fulfilments",
        "GET",
        "/orders/{id}/fulfilments",
    ),
    route(
        Endpoint::CreateReturn,
        "create-return",
        "POST",
        "/orders/{id}/returns",
    ),
    route(
        Endpoint::ListReturns,
        "list-returns",
        "GET",
        "/orders/{id}/returns",
    ),
    route(
        Endpoint::ExtendHold,
        "extend-hold",
        "POST",
        "/orders/{id}/hold",
    ),
    route(Endpoint::ListEvents, "list-events", "GET", "/events"),
    route(Endpoint::Health, "health", "GET", "/health"),
    route(Endpoint::Docs, "docs", "GET", "/openapi.json"),
    route(Endpoint::Docs, "docs", "GET", "/swagger/"),
    route(Endpoint::Docs, "docs", "GET", "/swagger/{file}"),
];

impl Endpoint {
    /// Whether the endpoint takes an `Idempotency-Key` (a write a client may need to retry).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Self::CreateProduct
                | Self::AdjustStock
                | Self::CreateOrder
                | Self::CancelOrder
                | Self::FulfillOrder
                | Self::CreateFulfilment
                | Self::CreateReturn
                | Self::ExtendHold
        )
    }

    /// The endpoint's (first) route.
    pub fn route(self) -> &'static Route {
        ROUTES
            .iter()
            .find(|route| route.endpoint == self)
            .expect("every endpoint has a route")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_has_one_function_and_each_route_one_endpoint() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_eq!(
                    a.endpoint == b.endpoint,
                    a.function == b.function,
                    "{a:?} and {b:?}"
                );
                assert!((a.method, a.path) != (b.method, b.path), "{a:?} and {b:?}");
            }
        }
    }
}
