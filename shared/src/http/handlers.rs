//! One function per endpoint: parse the request into a domain command, call the service, render the result.
//! Errors travel with `?` to the one place that renders them.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::dto::{
    CreateOrderBody, CreateProductBody, HealthView, MovementView, OrderView, PageView, ProductView,
    StockAdjustmentBody, UpdateProductBody,
};
use super::idempotency::{fingerprint, render, response};
use super::request::{
    check_query, idempotency_key, if_match, json_body, json_body_value, page_request, path_id,
    query, query_parsed,
};
use super::response::{ApiError, json, no_content, with_header};
use super::routes::Endpoint;
use super::{App, Caller};
use crate::domain::idempotency::Claim;
use crate::domain::order::{NewOrder, OrderAction, OrderStatus};
use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch};
use crate::domain::stock::StockAdjustment;
use crate::domain::{Deadline, etag};
use crate::ports::Store;
use crate::ports::Write;

type Result = std::result::Result<Response<Body>, ApiError>;

pub(super) async fn dispatch<S: Store>(
    app: &App<S>,
    endpoint: Endpoint,
    request: &Request,
    caller: &Caller,
    deadline: Deadline,
) -> Result {
    let id = || path_id(request, endpoint.route());
    let service = &app.inventory;
    let limit = app.config.body_limit;
    check_query(request)?;
    match endpoint {
        Endpoint::CreateProduct => {
            let (body, value) = json_body_value::<CreateProductBody>(request, limit)?;
            let write = Write::CreateProduct(NewProduct::try_from(body)?);
            let claim = claim(request, endpoint, caller, None, Some(&value))?;
            write_once(app, claim, write, deadline).await
        }
        Endpoint::ListProducts => {
            let filter = ProductFilter {
                sku: query(request, "sku").map(str::to_owned),
                low_stock: query_parsed(request, "low_stock", parse_bool)?.unwrap_or(false),
            };
            let page = service
                .list_products(filter, page_request(request)?, deadline)
                .await?;
            Ok(json(
                StatusCode::OK,
                &PageView::<ProductView>::from_page(page),
            ))
        }
        Endpoint::GetProduct => {
            let product = service.get_product(id()?, deadline).await?;
            Ok(product_response(StatusCode::OK, product))
        }
        Endpoint::UpdateProduct => {
            let id = id()?;
            let body: UpdateProductBody = json_body(request, app.config.body_limit)?;
            let patch = ProductPatch::try_from(body)?;
            let product = service
                .update_product(id, patch, if_match(request), deadline)
                .await?;
            Ok(product_response(StatusCode::OK, product))
        }
        Endpoint::DeleteProduct => {
            service.delete_product(id()?, deadline).await?;
            Ok(no_content())
        }
        Endpoint::AdjustStock => {
            let id = id()?;
            let (body, value) = json_body_value::<StockAdjustmentBody>(request, limit)?;
            let write = Write::AdjustStock(id, StockAdjustment::try_from(body)?);
            let claim = claim(request, endpoint, caller, Some(id), Some(&value))?;
            write_once(app, claim, write, deadline).await
        }
        Endpoint::ListStockMovements => {
            let id = id()?;
            let page = service
                .list_movements(id, page_request(request)?, deadline)
                .await?;
            Ok(json(
                StatusCode::OK,
                &PageView::<MovementView>::from_page(page),
            ))
        }
        Endpoint::CreateOrder => {
            let (body, value) = json_body_value::<CreateOrderBody>(request, limit)?;
            let write = Write::CreateOrder(NewOrder::try_from(body)?);
            let claim = claim(request, endpoint, caller, None, Some(&value))?;
            write_once(app, claim, write, deadline).await
        }
        Endpoint::ListOrders => {
            let status = query_parsed(request, "status", OrderStatus::parse)?;
            let page = service
                .list_orders(status, page_request(request)?, deadline)
                .await?;
            Ok(json(
                StatusCode::OK,
                &PageView::<OrderView>::from_page(page),
            ))
        }
        Endpoint::GetOrder => {
            let order = service.get_order(id()?, deadline).await?;
            Ok(json(StatusCode::OK, &OrderView::from(order)))
        }
        Endpoint::CancelOrder | Endpoint::FulfillOrder => {
            let action = match endpoint {
                Endpoint::CancelOrder => OrderAction::Cancel,
                _ => OrderAction::Fulfill,
            };
            let id = id()?;
            let write = Write::TransitionOrder(id, action);
            let claim = claim(request, endpoint, caller, Some(id), None)?;
            write_once(app, claim, write, deadline).await
        }
        // Served by its own function (see `http::docs`), never by an API function.
        Endpoint::Docs => Err(ApiError::Domain(crate::domain::Error::NotFound("route"))),
        Endpoint::Health => {
            service.health(deadline).await?;
            Ok(json(
                StatusCode::OK,
                &HealthView {
                    status: "ok".into(),
                },
            ))
        }
    }
}

/// The idempotency claim of a write request, if it carries an `Idempotency-Key`: the caller's key, and the
/// fingerprint of the request (route, path id, body).
fn claim(
    request: &Request,
    endpoint: Endpoint,
    caller: &Caller,
    id: Option<uuid::Uuid>,
    body: Option<&serde_json::Value>,
) -> std::result::Result<Option<Claim>, ApiError> {
    Ok(idempotency_key(request)?.map(|key| Claim {
        caller: caller.0.clone(),
        key,
        fingerprint: fingerprint(endpoint.route(), id, body),
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
