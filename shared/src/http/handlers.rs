//! The endpoints of the API, one handler each: parse the request into a domain command, call the service,
//! render the result. Errors travel with `?` to the one place that renders them. Each handler carries its
//! OpenAPI description, and has a type implementing [`Handler`]: a function binary names that type
//! (`bootstrap::run::<CreateOrder>()`), so the compiler builds and links that handler alone.

use std::future::Future;

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::dto::{
    CreateFulfilmentBody, CreateOrderBody, CreateProductBody, CreateReturnBody, ExtendHoldBody,
    StockAdjustmentBody, UpdateProductBody,
};
use super::idempotency::{fingerprint, render, response};
use super::problems::{
    BadRequest, Conflict, Internal, NotFound, PayloadTooLarge, PreconditionFailed, Unavailable,
    ValidationFailed,
};
use super::request::{
    idempotency_key, if_match, json_body, json_body_value, page_request, path_id, query,
    query_parsed,
};
use super::response::{ApiError, json, no_content, with_header};
use super::routes::{Endpoint, Route};
use super::{App, Caller};
use crate::domain::event::{DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT, Position};
use crate::domain::idempotency::Claim;
use crate::domain::order::{NewFulfilment, NewOrder, NewReturn, OrderAction, OrderStatus};
use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch};
use crate::domain::stock::StockAdjustment;
use crate::domain::{Deadline, etag};
use crate::ports::{Store, Write};
use crate::views::{
    AdjustmentView, EventView, FeedView, FulfilmentMadeView, FulfilmentView, HealthView,
    MovementView, OrderView, PageView, ProductView, ReturnMadeView, ReturnView,
};

pub type Result = std::result::Result<Response<Body>, ApiError>;

/// An endpoint known at compile time: what it is in the route table, and the handler that serves it.
pub trait Handler {
    const ENDPOINT: Endpoint;

    /// Serves one request, already authorized for [`Self::ENDPOINT`].
    fn handle<S: Store>(
        app: &App<S>,
        request: &Request,
        caller: &Caller,
        deadline: Deadline,
    ) -> impl Future<Output = Result> + Send;

    /// The endpoint's route (its first, for the docs function that has several).
    fn route() -> &'static Route {
        Self::ENDPOINT.route()
    }
}

/// Declares the type of each endpoint served by an API function, its [`Handler`] implementation, the
/// runtime choice among them that tests and tools use ([`App::handle`]; function binaries never use that), and
/// the list of their operations that the OpenAPI document is made of.
macro_rules! handlers {
    ($($endpoint:ident => $handler:ident,)*) => {
        /// The operations of the API functions' handlers (each described by its `#[utoipa::path]`).
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),*))]
        pub(super) struct Operations;

        $(
            #[doc = concat!("The endpoint served by [`", stringify!($handler), "`].")]
            #[derive(Debug, Clone, Copy)]
            pub struct $endpoint;

            impl Handler for $endpoint {
                const ENDPOINT: Endpoint = Endpoint::$endpoint;

                fn handle<S: Store>(
                    app: &App<S>,
                    request: &Request,
                    caller: &Caller,
                    deadline: Deadline,
                ) -> impl Future<Output = Result> + Send {
                    $handler(app, request, caller, deadline)
                }
            }
        )*

        /// Serves a request of `endpoint`, chosen at run time.
        pub(super) async fn dispatch<S: Store>(
            app: &App<S>,
            endpoint: Endpoint,
            request: Request,
        ) -> Response<Body> {
            match endpoint {
                $(Endpoint::$endpoint => app.serve::<$endpoint>(request).await,)*
                // Served by its own function (see `http::docs`), never by an API function.
                Endpoint::Docs => ApiError::Domain(crate::domain::Error::NotFound("route")).into_response(),
            }
        }
    };
}

handlers! {
    CreateProduct => create_product,
    ListProducts => list_products,
    GetProduct => get_product,
    UpdateProduct => update_product,
    DeleteProduct => delete_product,
    AdjustStock => adjust_stock,
    ListStockMovements => list_stock_movements,
    CreateOrder => create_order,
    ListOrders => list_orders,
    GetOrder => get_order,
    CancelOrder => cancel_order,
    FulfillOrder => fulfill_order,
    CreateFulfilment => create_fulfilment,
    ListFulfilments => list_fulfilments,
    CreateReturn => create_return,
    ListReturns => list_returns,
    ExtendHold => extend_hold,
    ListEvents => list_events,
    Health => health,
}

/// Create a product.
///
/// Its initial `on_hand` stock, if any, is recorded in the ledger as `received`.
#[utoipa::path(
    post, path = "/products", tag = "products",
    request_body(content = CreateProductBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The new product", body = ProductView, headers(
            ("Location" = String, description = "Path of the new product"),
            ("ETag" = String, description = "The product's version, quoted"))),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = ValidationFailed),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create_product<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    let (body, value) = json_body_value::<CreateProductBody>(request, app.config.body_limit)?;
    let write = Write::CreateProduct(NewProduct::try_from(body)?);
    let claim = claim::<CreateProduct>(request, caller, None, Some(&value))?;
    write_once(app, claim, write, deadline).await
}

/// List products in creation order.
#[utoipa::path(
    get, path = "/products", tag = "products",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page of this list (a cursor of another list is 400)"),
        ("sku" = Option<String>, Query, description = "Only the product with this exact sku"),
        ("low_stock" = Option<bool>, Query,
            description = "`true`: only products whose available stock is at or below their threshold"),
    ),
    responses(
        (status = 200, description = "A page of products", body = PageView<ProductView>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_products<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let filter = ProductFilter {
        sku: query(request, "sku").map(str::to_owned),
        low_stock: query_parsed(request, "low_stock", parse_bool)?.unwrap_or(false),
    };
    let page = app
        .inventory
        .list_products(filter, page_request(request)?, deadline)
        .await?;
    Ok(json(
        StatusCode::OK,
        &PageView::<ProductView>::from_page(page),
    ))
}

/// Read a product.
#[utoipa::path(
    get, path = "/products/{id}", tag = "products",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductView, headers(
            ("ETag" = String, description = "The product's version, quoted"))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get_product<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, GetProduct::route())?;
    let product = app.inventory.get_product(id, deadline).await?;
    Ok(product_response(StatusCode::OK, product))
}

/// Change a product's catalogue fields.
///
/// Absent fields stay as they are; `null` clears `description` or `low_stock_threshold`. With `If-Match`,
/// the change applies only if the product is still at that version. A `safety_stock` (or a smaller
/// `backorder_limit`) that would take available stock below minus the backorder limit is 409 `conflict`.
#[utoipa::path(
    patch, path = "/products/{id}", tag = "products",
    params(
        ("id" = uuid::Uuid, Path, description = "Product id"),
        ("If-Match" = Option<String>, Header, description = "`*` or the `ETag`(s) the change is based on"),
    ),
    request_body(content = UpdateProductBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The changed product", body = ProductView, headers(
            ("ETag" = String, description = "The product's new version, quoted"))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = ValidationFailed),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn update_product<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, UpdateProduct::route())?;
    let body: UpdateProductBody = json_body(request, app.config.body_limit)?;
    let patch = ProductPatch::try_from(body)?;
    let product = app
        .inventory
        .update_product(id, patch, if_match(request), deadline)
        .await?;
    Ok(product_response(StatusCode::OK, product))
}

/// Remove a product from the catalogue.
///
/// Past orders keep their snapshot of it. Refused (409 `conflict`) while pending orders hold some of its
/// stock or any stock is on hand: adjust the stock to zero first, so that the ledger of every product,
/// deleted or not, adds up to its stock. The ledger of a deleted product is kept, but no longer listed
/// (its stock movements answer 404, like the product).
#[utoipa::path(
    delete, path = "/products/{id}", tag = "products",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn delete_product<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, DeleteProduct::route())?;
    app.inventory.delete_product(id, deadline).await?;
    Ok(no_content())
}

/// Adjust a product's on-hand stock.
///
/// Writes a ledger row in the same transaction. Refused when on-hand stock would drop below zero or below
/// what pending orders hold.
#[utoipa::path(
    post, path = "/products/{id}/stock-adjustments", tag = "stock",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body(content = StockAdjustmentBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The ledger row and the product after it", body = AdjustmentView, headers(
            ("ETag" = String, description = "The product's new version, quoted"))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = ValidationFailed),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn adjust_stock<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    write_on::<AdjustStock, StockAdjustmentBody, _, _>(
        app,
        request,
        caller,
        deadline,
        |id, body| Ok(Write::AdjustStock(id, StockAdjustment::try_from(body)?)),
    )
    .await
}

/// Read a product's stock ledger, newest first.
///
/// 404 for a product that does not exist, or no longer does (its ledger is kept, but not listed).
#[utoipa::path(
    get, path = "/products/{id}/stock-movements", tag = "stock",
    params(
        ("id" = uuid::Uuid, Path, description = "Product id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page of this list (a cursor of another list, another product's included, is 400)"),
    ),
    responses(
        (status = 200, description = "A page of ledger rows", body = PageView<MovementView>),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_stock_movements<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, ListStockMovements::route())?;
    let page = app
        .inventory
        .list_movements(id, page_request(request)?, deadline)
        .await?;
    Ok(json(
        StatusCode::OK,
        &PageView::<MovementView>::from_page(page),
    ))
}

/// Place an order, reserving stock for every line at once.
///
/// All or nothing: if any product is unknown (404) or short of available stock (409, every short line
/// listed), nothing is reserved. The order holds its stock until `expires_at` (`hold_seconds` from now, or
/// the configured default of 30 minutes); an order still pending then is cancelled with `cancel_reason`
/// `expired` within a minute, and its stock released.
#[utoipa::path(
    post, path = "/orders", tag = "orders",
    request_body(content = CreateOrderBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The pending order", body = OrderView, headers(
            ("Location" = String, description = "Path of the new order"))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = ValidationFailed),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create_order<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    let (body, value) = json_body_value::<CreateOrderBody>(request, app.config.body_limit)?;
    let mut order = NewOrder::try_from(body)?;
    order.hold.get_or_insert(app.config.order_hold);
    let write = Write::CreateOrder(order);
    let claim = claim::<CreateOrder>(request, caller, None, Some(&value))?;
    write_once(app, claim, write, deadline).await
}

/// List orders, newest first.
///
/// A page holds up to `limit` orders and at most 1,000 order lines in all: it ends before the order that
/// would take it over (so it may hold fewer than `limit` orders while `next_cursor` is not null). This
/// keeps every response far below the 6 MB a Lambda function can answer.
#[utoipa::path(
    get, path = "/orders", tag = "orders",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page of this list (a cursor of another list is 400)"),
        ("status" = Option<OrderStatus>, Query, description = "Only orders in this status"),
    ),
    responses(
        (status = 200, description = "A page of orders", body = PageView<OrderView>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_orders<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let status = query_parsed(request, "status", OrderStatus::parse)?;
    let page = app
        .inventory
        .list_orders(status, page_request(request)?, deadline)
        .await?;
    Ok(json(
        StatusCode::OK,
        &PageView::<OrderView>::from_page(page),
    ))
}

/// Read an order.
#[utoipa::path(
    get, path = "/orders/{id}", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn get_order<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, GetOrder::route())?;
    let order = app.inventory.get_order(id, deadline).await?;
    Ok(json(StatusCode::OK, &OrderView::from(order)))
}

/// Cancel a pending order, releasing its stock.
///
/// Cancelling a cancelled order changes nothing; a fulfilled order cannot be cancelled.
#[utoipa::path(
    post, path = "/orders/{id}/cancel", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The cancelled order", body = OrderView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn cancel_order<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    transition::<CancelOrder, _>(app, request, caller, OrderAction::Cancel, deadline).await
}

/// Fulfil everything an order has left: its stock leaves the warehouse.
///
/// On-hand and reserved stock both drop by what each line has left, recorded as one fulfilment. Fulfilling
/// a fulfilled order changes nothing; a cancelled order cannot be fulfilled.
#[utoipa::path(
    post, path = "/orders/{id}/fulfill", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The fulfilled order", body = OrderView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn fulfill_order<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    transition::<FulfillOrder, _>(app, request, caller, OrderAction::Fulfill, deadline).await
}

/// Ship some units of some lines of an order (a partial fulfilment).
///
/// The order must be pending or partially fulfilled. On-hand and reserved stock both drop by the units
/// shipped (ledger reason `order_fulfilled`); each line counts what has shipped, and the order becomes
/// `partially_fulfilled` while units are left, `fulfilled` when none are. A product that is not a line of the
/// order is a 422; more units than a line has left is a 409 `beyond_remaining` listing what each such line
/// has left, and ships nothing. Raises `order.partially_fulfilled` (or `order.fulfilled` for the last units).
#[utoipa::path(
    post, path = "/orders/{id}/fulfilments", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body(content = CreateFulfilmentBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The fulfilment, and the order after it", body = FulfilmentMadeView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = ValidationFailed),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create_fulfilment<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    write_on::<CreateFulfilment, CreateFulfilmentBody, _, _>(
        app,
        request,
        caller,
        deadline,
        |id, body| Ok(Write::Fulfil(id, NewFulfilment::try_from(body)?)),
    )
    .await
}

/// Take shipped units of an order back (a return).
///
/// Each line names a product of the order, the units that came back (at most what its line shipped and has
/// not had back) and whether they go back on hand: `restock: true` adds them to `on_hand` (ledger
/// `return_restock`), `false` leaves stock as it is and the ledger records `return_discarded`. Each line
/// counts what came back (`returned`); the order's status does not change. A product that is not a line of the
/// order, or named twice, is a 422; more than can be returned is a 409 `beyond_returnable` listing what each
/// such line can still take back, and takes nothing; restocking a product deleted from the catalogue since is
/// a 409 `conflict`. Raises `order.returned`.
#[utoipa::path(
    post, path = "/orders/{id}/returns", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body(content = CreateReturnBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The return, and the order after it", body = ReturnMadeView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = ValidationFailed),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn create_return<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    write_on::<CreateReturn, CreateReturnBody, _, _>(app, request, caller, deadline, |id, body| {
        Ok(Write::Return(id, NewReturn::try_from(body)?))
    })
    .await
}

/// List an order's fulfilments, oldest first.
///
/// Each with the units it shipped of each line; the order itself shows per line what shipped in all.
#[utoipa::path(
    get, path = "/orders/{id}/fulfilments", tag = "orders",
    params(
        ("id" = uuid::Uuid, Path, description = "Order id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page of this list (a cursor of another list, another order's included, is 400)"),
    ),
    responses(
        (status = 200, description = "A page of the order's fulfilments", body = PageView<FulfilmentView>),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_fulfilments<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, ListFulfilments::route())?;
    let page = app
        .inventory
        .list_fulfilments(id, page_request(request)?, deadline)
        .await?;
    Ok(json(
        StatusCode::OK,
        &PageView::<FulfilmentView>::from_page(page),
    ))
}

/// List an order's returns, oldest first.
///
/// Each with its reason and the units it took back of each line, restocked or not.
#[utoipa::path(
    get, path = "/orders/{id}/returns", tag = "orders",
    params(
        ("id" = uuid::Uuid, Path, description = "Order id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page of this list (a cursor of another list, another order's included, is 400)"),
    ),
    responses(
        (status = 200, description = "A page of the order's returns", body = PageView<ReturnView>),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_returns<S: Store>(
    app: &App<S>,
    request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, ListReturns::route())?;
    let page = app
        .inventory
        .list_returns(id, page_request(request)?, deadline)
        .await?;
    Ok(json(
        StatusCode::OK,
        &PageView::<ReturnView>::from_page(page),
    ))
}

/// Extend an order's hold on its stock.
///
/// The order (pending or partially fulfilled) then holds what it has not shipped until `hold_seconds` from
/// now, unless it holds it longer already (a hold is never shortened: the order is answered as it is). An
/// order that holds no stock (fulfilled or cancelled), or whose hold has ended (its stock is being released), is a 409. Raced against the expiry of its hold, exactly one wins.
#[utoipa::path(
    post, path = "/orders/{id}/hold", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    request_body(content = ExtendHoldBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The order, with its new `expires_at`", body = OrderView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = ValidationFailed),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn extend_hold<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    write_on::<ExtendHold, ExtendHoldBody, _, _>(app, request, caller, deadline, |id, body| {
        Ok(Write::ExtendHold(id, std::time::Duration::try_from(body)?))
    })
    .await
}

/// Follow what happens: the event feed.
///
/// Every change writes its events in its own transaction: `order.placed`, `order.cancelled`,
/// `order.expired`, `order.fulfilled`, `order.partially_fulfilled`, `order.returned`, `order.hold_extended`, `stock.adjusted`, `stock.low` (a change took
/// available stock from above the product's threshold to at or below it), `product.created`,
/// `product.updated`, `product.deleted`; each with the resource as the change left it. Events come in feed order, which lists
/// the changes of any one resource in the order they committed, and a change that began before another but
/// committed after it is never skipped: an event appears only once every transaction that could precede it
/// has ended (a lag of the longest running write, milliseconds under normal load). Start without `after`
/// (from the oldest event kept), then poll with `next_cursor`, which is never null. A page holds up to `limit`
/// events and about 1 MB of event data at most (it ends before the event that would take it over, and
/// always holds one), far below the 6 MB a Lambda function can answer. An event is deleted 7 days after
/// its change, once the publisher has delivered it to the EventBridge bus.
///
/// Besides `events.read`, a caller sees only the events of what its token may read: `order.*` with
/// `orders.read`, `product.*` and `stock.low` with `products.read`, `stock.adjusted` with `stock.read`. The
/// others are left out of its pages, which can then hold fewer than `limit` events, or none, while
/// `next_cursor` still moves past them. A caller is caught up when `next_cursor` is the cursor it sent.
#[utoipa::path(
    get, path = "/events", tag = "events",
    params(
        ("after" = Option<String>, Query, description = "`next_cursor` of the previous page, or an event's `cursor`: only events after it"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Most events to return, default 100"),
    ),
    responses(
        (status = 200, description = "The events after `after`, oldest first", body = FeedView),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn list_events<S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    let after = query_parsed(request, "after", Position::decode)?.unwrap_or_default();
    let limit = query_parsed(request, "limit", |value| {
        value
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_FEED_LIMIT).contains(limit))
            .ok_or_else(|| format!("limit must be an integer from 1 to {MAX_FEED_LIMIT}"))
    })?
    .unwrap_or(DEFAULT_FEED_LIMIT);
    let page = app.inventory.list_events(after, limit, deadline).await?;
    // Only what the caller may read besides the feed; the cursor moves past everything examined, so a page
    // filtered down to nothing still moves on, and no event the caller may read is ever skipped.
    Ok(json(
        StatusCode::OK,
        &FeedView {
            next_cursor: page.next.encode(),
            items: page
                .items
                .into_iter()
                .filter(|event| caller.may(super::routes::event_scope(event.event_type)))
                .map(EventView::from)
                .collect(),
        },
    ))
}

/// Liveness, with a database round trip.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Up, and the database answers", body = HealthView),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn health<S: Store>(
    app: &App<S>,
    _request: &Request,
    _caller: &Caller,
    deadline: Deadline,
) -> Result {
    app.inventory.health(deadline).await?;
    Ok(json(
        StatusCode::OK,
        &HealthView {
            status: "ok".into(),
        },
    ))
}

/// Cancels or fulfils an order (endpoint `H`), at most once per `Idempotency-Key`.
async fn transition<H: Handler, S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    action: OrderAction,
    deadline: Deadline,
) -> Result {
    let id = path_id(request, H::route())?;
    let write = Write::TransitionOrder(id, action);
    let claim = claim::<H>(request, caller, Some(id.uuid()), None)?;
    write_once(app, claim, write, deadline).await
}

/// A write on the resource in the path of endpoint `H`, with a JSON body `B` that `make` turns into the
/// write: made at most once for its `Idempotency-Key`, if it carries one.
async fn write_on<H: Handler, B: serde::de::DeserializeOwned, I: crate::domain::Id, S: Store>(
    app: &App<S>,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
    make: impl FnOnce(I, B) -> std::result::Result<Write, crate::domain::Error>,
) -> Result {
    let id: I = path_id(request, H::route())?;
    let (body, value) = json_body_value::<B>(request, app.config.body_limit)?;
    let write = make(id, body)?;
    let claim = claim::<H>(request, caller, Some(id.uuid()), Some(&value))?;
    write_once(app, claim, write, deadline).await
}

/// The idempotency claim of a write request of endpoint `H`, if it carries an `Idempotency-Key`: the
/// caller's key, and the fingerprint of the request (route, path id, body).
fn claim<H: Handler>(
    request: &Request,
    caller: &Caller,
    id: Option<uuid::Uuid>,
    body: Option<&serde_json::Value>,
) -> std::result::Result<Option<Claim>, ApiError> {
    Ok(idempotency_key(request)?.map(|key| Claim {
        caller: caller.0.clone(),
        key,
        fingerprint: fingerprint(H::route(), id, body),
    }))
}

/// Makes a write of one of the idempotent routes: at most once per key when the request has one (a repeat
/// gets the stored response, marked `Idempotent-Replayed: true`), as a plain write otherwise. Both answer
/// with the same rendering of what was written.
async fn write_once<S: Store>(
    app: &App<S>,
    claim: Option<Claim>,
    write: Write,
    deadline: Deadline,
) -> Result {
    let service = &app.inventory;
    match claim {
        Some(claim) => {
            let once = service.write_once(&claim, write, &render, deadline).await?;
            Ok(response(once.response(), once.replayed()))
        }
        None => {
            let written = service.write(write, deadline).await?;
            Ok(response(&render(&written), false))
        }
    }
}

/// A product with its `ETag`.
fn product_response(status: StatusCode, product: Product) -> Response<Body> {
    let tag = etag(product.version);
    with_header(
        json(status, &ProductView::from(product)),
        header::ETAG,
        &tag,
    )
}

fn parse_bool(value: &str) -> std::result::Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}
