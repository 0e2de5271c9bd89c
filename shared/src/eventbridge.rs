//! Publishing events to an Amazon EventBridge bus: the `PutEvents` action of EventBridge's JSON 1.1 protocol
//! over HTTPS, signed with SigV4 (service `events`) with the function's own credentials from the environment,
//! as Lambda provides them. (The AWS SDK's EventBridge client would do the same at the cost of a much
//! larger binary and build.)

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::Deserialize;

use crate::domain::Error;
use crate::domain::event::Event;
use crate::views::EventView;

/// The `Source` of every event the API publishes.
pub const SOURCE: &str = "inventory";

/// Most entries one `PutEvents` call takes (fixed by EventBridge).
pub const MAX_ENTRIES: usize = 10;

/// Most bytes of entries one call carries: EventBridge takes 256 KiB per call; the rest is kept for the
/// names and JSON around them.
const MAX_CALL_BYTES: usize = 200 * 1024;

/// Where and as whom to publish.
#[derive(Debug, Clone)]
pub struct EventBus {
    /// The bus's name (or ARN).
    pub name: String,
    pub region: String,
    /// The service's URL: `https://events.<region>.amazonaws.com` unless overridden.
    pub endpoint: String,
    credentials: Credentials,
    client: reqwest::Client,
}

/// What `PutEvents` answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEventsOutput {
    #[serde(default)]
    failed_entry_count: usize,
    #[serde(default)]
    entries: Vec<ResultEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultEntry {
    error_code: Option<String>,
}

impl EventBus {
    pub fn new(name: String, region: String, endpoint: String, credentials: Credentials) -> Self {
        Self {
            name,
            region,
            endpoint,
            credentials,
            client: reqwest::Client::new(),
        }
    }

    /// The bus the environment names: `EVENT_BUS_NAME`, `AWS_REGION`, the credentials Lambda puts in
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, and the endpoint in
    /// `AWS_ENDPOINT_URL_EVENTBRIDGE` or `AWS_ENDPOINT_URL` when set (as the AWS SDKs read them).
    pub fn from_environment() -> Result<Self, Error> {
        Self::from_variables(|name| std::env::var(name).ok())
    }

    /// [`EventBus::from_environment`], with the variables `var` gives.
    pub fn from_variables(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let var = |name: &str| var(name).filter(|value| !value.is_empty());
        let missing = |what: &str| Error::internal(format!("publishing events needs {what}"));
        let name = var("EVENT_BUS_NAME").ok_or_else(|| missing("EVENT_BUS_NAME"))?;
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or_else(|| missing("AWS_REGION"))?;
        let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(missing(
                "AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            ));
        };
        let endpoint = var("AWS_ENDPOINT_URL_EVENTBRIDGE")
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://events.{region}.amazonaws.com"));
        let credentials =
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        Ok(Self::new(name, region, endpoint, credentials))
    }

    /// The body of a `PutEvents` call with `events`: each event's `detail` is the feed's JSON of it.
    pub fn put_events_body(&self, events: &[Event]) -> Vec<u8> {
        let entries: Vec<serde_json::Value> = events
            .iter()
            .map(|event| {
                let detail = serde_json::to_string(&EventView::from(event.clone()))
                    .expect("events serialize to JSON");
                serde_json::json!({
                    "EventBusName": self.name,
                    "Source": SOURCE,
                    "DetailType": event.event_type.as_str(),
                    "Detail": detail,
                    "Time": event.occurred_at.unix_timestamp(),
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "Entries": entries })).expect("JSON")
    }

    /// The signed HTTP request of a `PutEvents` call with `body`, as of `now`.
    pub fn signed_request(
        &self,
        body: Vec<u8>,
        now: SystemTime,
    ) -> Result<http::Request<Vec<u8>>, Error> {
        let failed = |_| Error::unavailable("could not sign the PutEvents request");
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let mut request = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSEvents.PutEvents")
            .body(body)
            .map_err(|_| Error::unavailable("could not build the PutEvents request"))?;
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("events")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| Error::unavailable("could not sign the PutEvents request"))?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.into_iter(),
            SignableBody::Bytes(request.body()),
        )
        .map_err(failed)?;
        let (instructions, _) = sign(signable, &params).map_err(failed)?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    /// Sends `events` in order, in calls of at most [`MAX_ENTRIES`] and [`MAX_CALL_BYTES`], and answers how
    /// many of the first ones the bus accepted: it stops at the first call that fails or any entry the bus
    /// refuses, so that a later event of a resource is never published before an earlier one.
    pub async fn put(&self, events: &[Event]) -> Result<usize, Error> {
        let mut accepted = 0;
        for chunk in chunks(events) {
            let request = self.signed_request(self.put_events_body(chunk), SystemTime::now())?;
            let request = reqwest::Request::try_from(request)
                .map_err(|_| Error::unavailable("could not build the PutEvents request"))?;
            let response = self
                .client
                .execute(request)
                .await
                .map_err(|error| Error::unavailable(format!("PutEvents: {error}")))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|error| Error::unavailable(format!("PutEvents: {error}")))?;
            if !status.is_success() {
                return Err(Error::unavailable(format!(
                    "PutEvents answered {status}: {text}"
                )));
            }
            let output: PutEventsOutput = serde_json::from_str(&text)
                .map_err(|error| Error::unavailable(format!("PutEvents answered {error}")))?;
            let taken = output
                .entries
                .iter()
                .take_while(|entry| entry.error_code.is_none())
                .count()
                .min(chunk.len());
            accepted += taken;
            if output.failed_entry_count > 0 || taken < chunk.len() {
                tracing::warn!(
                    failed = output.failed_entry_count,
                    "the bus refused events; they are sent again on the next run"
                );
                return Ok(accepted);
            }
        }
        Ok(accepted)
    }
}

/// `events` cut into runs that each fit one `PutEvents` call.
fn chunks(events: &[Event]) -> Vec<&[Event]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, event) in events.iter().enumerate() {
        let size = event.data.to_string().len() + 512;
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_CALL_BYTES) {
            chunks.push(&events[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < events.len() {
        chunks.push(&events[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{EventType, Position};

    fn event(n: i64, bytes: usize) -> Event {
        Event {
            id: uuid::Uuid::from_u128(n as u128),
            event_type: EventType::OrderPlaced,
            resource_id: uuid::Uuid::from_u128(7),
            data: serde_json::json!({ "pad": "x".repeat(bytes) }),
            occurred_at: time::macros::datetime!(2026-11-26 12:00:00 UTC),
            position: Position { xid: 900, seq: n },
        }
    }

    fn bus() -> EventBus {
        EventBus::new(
            "inventory-events".into(),
            "eu-west-1".into(),
            "https://events.eu-west-1.amazonaws.com".into(),
            Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "test",
            ),
        )
    }

    #[test]
    fn calls_take_ten_entries_and_stay_under_the_size_limit() {
        let small: Vec<Event> = (0..23).map(|n| event(n, 10)).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let big: Vec<Event> = (0..5).map(|n| event(n, 90 * 1024)).collect();
        let sizes: Vec<usize> = chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn an_entry_carries_the_feed_s_json_of_the_event() {
        let body: serde_json::Value =
            serde_json::from_slice(&bus().put_events_body(&[event(1, 3)])).unwrap();
        let entry = &body["Entries"][0];
        // The members of PutEventsRequestEntry in botocore's model of the service (events 2015-10-07).
        let known = [
            "Time",
            "Source",
            "Resources",
            "DetailType",
            "Detail",
            "EventBusName",
            "TraceHeader",
        ];
        assert!(
            entry
                .as_object()
                .unwrap()
                .keys()
                .all(|k| known.contains(&k.as_str()))
        );
        assert_eq!(entry["EventBusName"], "inventory-events");
        assert_eq!(entry["Source"], "inventory");
        assert_eq!(entry["DetailType"], "order.placed");
        assert_eq!(entry["Time"], 1_795_694_400);
        let detail: serde_json::Value =
            serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail["id"], "00000000-0000-0000-0000-000000000001");
        assert_eq!(detail["type"], "order.placed");
        assert_eq!(detail["data"]["pad"], "xxx");
    }

    /// The expected signature was computed by an independent implementation (botocore 1.43's SigV4Auth, for
    /// the service model's `events` signing name) for the same keys, region, time, headers and body.
    #[test]
    fn the_request_is_a_put_events_call_signed_for_the_events_service() {
        let bus = bus();
        let body = br#"{"Entries":[]}"#.to_vec();
        let noon = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_694_400);
        let request = bus.signed_request(body, noon).unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(
            request.uri().to_string(),
            "https://events.eu-west-1.amazonaws.com/"
        );
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("x-amz-target"), "AWSEvents.PutEvents");
        assert_eq!(header("content-type"), "application/x-amz-json-1.1");
        assert_eq!(header("x-amz-date"), "20261126T120000Z");
        assert_eq!(header("authorization"), EXPECTED_AUTHORIZATION);
    }

    const EXPECTED_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/events/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=2b2c6fb36ab60480cc2caeae3678e0ea25ade2ad40206383e462bee74119ba0c";

    #[test]
    fn the_environment_names_the_bus_and_may_override_the_endpoint() {
        let vars = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                [
                    ("EVENT_BUS_NAME", "bus"),
                    ("AWS_REGION", "eu-west-1"),
                    ("AWS_ACCESS_KEY_ID", "AKID"),
                    ("AWS_SECRET_ACCESS_KEY", "secret"),
                ]
                .iter()
                .chain(extra)
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
            }
        };
        let bus = EventBus::from_variables(vars(&[])).unwrap();
        assert_eq!(bus.endpoint, "https://events.eu-west-1.amazonaws.com");
        let local = EventBus::from_variables(vars(&[(
            "AWS_ENDPOINT_URL_EVENTBRIDGE",
            "http://127.0.0.1:4010",
        )]))
        .unwrap();
        assert_eq!(local.endpoint, "http://127.0.0.1:4010");
        assert!(EventBus::from_variables(|_| None).is_err());
    }
}
