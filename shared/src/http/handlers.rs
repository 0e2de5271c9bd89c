//! One function per endpoint: parse the request into a domain command, call the service, render the result.
//! Errors travel with `?` to the one place that renders them.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::App;
use super::dto::{
    AdjustmentView, CreateOrderBody, CreateProductBody, HealthView, MovementView, OrderView,
    PageView, ProductView, StockAdjustmentBody, UpdateProductBody,
};
use super::request::{if_match, json_body, page_request, path_id, query, query_parsed};
use super::response::{ApiError, json, no_content, with_header};
use super::routes::Endpoint;
use crate::domain::order::{NewOrder, OrderAction, OrderStatus};
use crate::domain::product::{NewProduct, Product, ProductFilter, ProductPatch};
use crate::domain::stock::StockAdjustment;
use crate::domain::{Deadline, etag};
use crate::ports::Store;

type Result = std::result::Result<Response<Body>, ApiError>;

pub(super) async fn dispatch<S: Store>(
    app: &App<S>,
    endpoint: Endpoint,
    request: &Request,
    deadline: Deadline,
) -> Result {
    let id = || path_id(request, endpoint.route());
    let service = &app.inventory;
    match endpoint {
        Endpoint::CreateProduct => {
            let body: CreateProductBody = json_body(request, app.config.body_limit)?;
            let product = service
                .create_product(NewProduct::try_from(body)?, deadline)
                .await?;
            let location = format!("/products/{}", product.id);
            Ok(with_header(
                product_response(StatusCode::CREATED, product),
                header::LOCATION,
                &location,
            ))
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
            let body: StockAdjustmentBody = json_body(request, app.config.body_limit)?;
            let adjustment = StockAdjustment::try_from(body)?;
            let (movement, product) = service.adjust_stock(id, adjustment, deadline).await?;
            let version = product.version;
            let view = AdjustmentView {
                movement: movement.into(),
                product: product.into(),
            };
            Ok(with_header(
                json(StatusCode::CREATED, &view),
                header::ETAG,
                &etag(version),
            ))
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
            let body: CreateOrderBody = json_body(request, app.config.body_limit)?;
            let order = service
                .create_order(NewOrder::try_from(body)?, deadline)
                .await?;
            let location = format!("/orders/{}", order.id);
            let response = json(StatusCode::CREATED, &OrderView::from(order));
            Ok(with_header(response, header::LOCATION, &location))
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
            let order = service.transition_order(id()?, action, deadline).await?;
            Ok(json(StatusCode::OK, &OrderView::from(order)))
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
