//! The HTTP side of idempotent writes: the request's fingerprint, and the one rendering of every write's
//! response, which is what is stored with the key and sent again on a replay.

use lambda_http::http::{HeaderName, HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde_json::Value;

use super::routes::Route;
use crate::domain::etag;
use crate::domain::idempotency::{Fingerprint, Replay};
use crate::ports::Written;
use crate::views::{AdjustmentView, FulfilmentMadeView, OrderView, ProductView, ReturnMadeView};

/// Sent with a replayed response.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// SHA-256 of the method, the route, the path id and the body in canonical JSON (keys sorted, no spaces):
/// the same request sent again has the same fingerprint however its JSON is laid out.
pub fn fingerprint(route: &Route, id: Option<uuid::Uuid>, body: Option<&Value>) -> Fingerprint {
    let mut text = format!("{} {}\n", route.method, route.path);
    if let Some(id) = id {
        text.push_str(&id.to_string());
    }
    text.push('\n');
    if let Some(body) = body {
        canonical(body, &mut text);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut bytes = [0; 32];
    bytes.copy_from_slice(digest.as_ref());
    Fingerprint(bytes)
}

/// Writes `value` as JSON with every object's keys in sorted order.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The response to what a write produced: status, the headers that belong to it, and the JSON body.
pub fn render(written: &Written) -> Replay {
    let (status, headers, body) = match written {
        Written::ProductCreated(product) => (
            StatusCode::CREATED,
            vec![
                ("location", format!("/products/{}", product.id)),
                ("etag", etag(product.version)),
            ],
            serde_json::to_string(&ProductView::from(product.clone())),
        ),
        Written::StockAdjusted(movement, product) => (
            StatusCode::CREATED,
            vec![("etag", etag(product.version))],
            serde_json::to_string(&AdjustmentView {
                movement: movement.clone().into(),
                product: product.clone().into(),
            }),
        ),
        Written::OrderPlaced(order) => (
            StatusCode::CREATED,
            vec![("location", format!("/orders/{}", order.id))],
            serde_json::to_string(&OrderView::from(order.clone())),
        ),
        Written::Fulfilled(fulfilment, order) => (
            StatusCode::CREATED,
            vec![],
            serde_json::to_string(&FulfilmentMadeView {
                fulfilment: fulfilment.clone().into(),
                order: order.clone().into(),
            }),
        ),
        Written::Returned(taken, order) => (
            StatusCode::CREATED,
            vec![],
            serde_json::to_string(&ReturnMadeView {
                taken: taken.clone().into(),
                order: order.clone().into(),
            }),
        ),
        Written::OrderTransitioned(order)
        | Written::HoldExtended(order)
        | Written::OrderAlreadyDone(order) => (
            StatusCode::OK,
            vec![],
            serde_json::to_string(&OrderView::from(order.clone())),
        ),
    };
    Replay {
        status: status.as_u16(),
        headers: headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        // The views serialize infallibly (plain structs of strings and numbers).
        body: body.unwrap_or_default(),
    }
}

/// The HTTP response of a stored (or just rendered) write response.
pub fn response(replay: &Replay, replayed: bool) -> Response<Body> {
    let mut response = Response::new(Body::Text(replay.body.clone()));
    *response.status_mut() = StatusCode::from_u16(replay.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in &replay.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    if replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Endpoint, ROUTES};
    use serde_json::json;

    fn route(endpoint: Endpoint) -> &'static Route {
        ROUTES.iter().find(|r| r.endpoint == endpoint).unwrap()
    }

    #[test]
    fn the_fingerprint_ignores_key_order_and_spacing_but_not_content() {
        let orders = route(Endpoint::CreateOrder);
        let a: Value = serde_json::from_str(
            r#"{"lines":[{"product_id":"x","quantity":1}],"customer_ref":"c"}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{ "customer_ref": "c", "lines": [ {"quantity": 1, "product_id": "x"} ] }"#,
        )
        .unwrap();
        assert_eq!(
            fingerprint(orders, None, Some(&a)),
            fingerprint(orders, None, Some(&b))
        );
        let c = json!({"lines": [{"product_id": "x", "quantity": 2}], "customer_ref": "c"});
        assert_ne!(
            fingerprint(orders, None, Some(&a)),
            fingerprint(orders, None, Some(&c))
        );
    }

    #[test]
    fn the_fingerprint_tells_routes_and_ids_apart() {
        let id = uuid::Uuid::now_v7();
        let cancel = route(Endpoint::CancelOrder);
        let fulfil = route(Endpoint::FulfillOrder);
        assert_ne!(
            fingerprint(cancel, Some(id), None),
            fingerprint(fulfil, Some(id), None)
        );
        assert_ne!(
            fingerprint(cancel, Some(id), None),
            fingerprint(cancel, Some(uuid::Uuid::now_v7()), None)
        );
    }
}
