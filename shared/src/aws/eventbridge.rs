//! Publishing events to an Amazon EventBridge bus: the `PutEvents` action (see [`super::call`]), with the
//! function's own credentials from the environment, as Lambda provides them.

use std::time::SystemTime;

use serde::Deserialize;

use super::call::{self, Account, CallError, Service};
use crate::domain::event::Event;
use crate::domain::{Deadline, Error};
use crate::ports::EventSink;
use crate::views::EventView;

/// EventBridge, whose endpoint `AWS_ENDPOINT_URL_EVENTBRIDGE` (or `AWS_ENDPOINT_URL`) overrides.
pub const EVENTBRIDGE: Service = Service {
    name: "EventBridge",
    signing_name: "events",
    endpoint_variable: "EVENTBRIDGE",
};

const PUT_EVENTS: &str = "AWSEvents.PutEvents";

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
    /// The service's URL: `https://events.<region>.amazonaws.com` unless overridden.
    pub endpoint: String,
    account: Account,
    client: reqwest::Client,
}

/// A `PutEvents` call that failed: nothing it carried can be counted as published.
#[derive(Debug, thiserror::Error)]
#[error("PutEvents failed")]
pub struct PutEventsFailed(#[source] CallError);

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
    pub fn new(name: String, endpoint: String, account: Account) -> Self {
        Self {
            name,
            endpoint,
            account,
            client: reqwest::Client::new(),
        }
    }

    /// The bus `name`, as the environment's account (see [`Account::from_environment`]), at the endpoint in
    /// `AWS_ENDPOINT_URL_EVENTBRIDGE` or `AWS_ENDPOINT_URL` when set (as the AWS SDKs read them).
    pub fn from_environment(name: String) -> Result<Self, super::AccountError> {
        Self::from_variables(name, |name| std::env::var(name).ok())
    }

    /// [`EventBus::from_environment`], with the variables `var` gives.
    pub fn from_variables(
        name: String,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, super::AccountError> {
        let account = Account::from_variables(&var)?;
        let endpoint = EVENTBRIDGE.endpoint(&account.region, var);
        Ok(Self::new(name, endpoint, account))
    }

    /// The body of a `PutEvents` call with `events`: each event's `detail` is the feed's JSON of it.
    pub fn put_events_body(&self, events: &[Event]) -> serde_json::Value {
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
        serde_json::json!({ "Entries": entries })
    }

    /// The signed HTTP request of a `PutEvents` call with `body`, as of `now`.
    pub fn signed_request(
        &self,
        body: Vec<u8>,
        now: SystemTime,
    ) -> Result<http::Request<Vec<u8>>, CallError> {
        call::signed_request(
            &EVENTBRIDGE,
            &self.endpoint,
            &self.account,
            PUT_EVENTS,
            body,
            now,
        )
    }

    /// Sends `events` in order, in calls of at most [`MAX_ENTRIES`] and [`MAX_CALL_BYTES`], each within
    /// `deadline`, and answers how many of the first ones the bus accepted: it stops at the first call that
    /// fails or any entry the bus refuses, so that a later event of a resource is never published before an
    /// earlier one.
    pub async fn put(&self, events: &[Event], deadline: Deadline) -> Result<usize, Error> {
        let failed = |error| Error::unavailable(PutEventsFailed(error));
        let mut accepted = 0;
        for chunk in chunks(events) {
            let answer = call::call(
                &self.client,
                &EVENTBRIDGE,
                &self.endpoint,
                &self.account,
                PUT_EVENTS,
                &self.put_events_body(chunk),
                Some(deadline.remaining()),
            )
            .await
            .map_err(failed)?;
            let output: PutEventsOutput = serde_json::from_slice(&answer).map_err(|error| {
                failed(CallError::Answer(format!(
                    "is not a PutEvents answer: {error}"
                )))
            })?;
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

/// The bus is where the publisher delivers the feed.
impl EventSink for EventBus {
    async fn publish(&self, events: &[Event], deadline: Deadline) -> Result<usize, Error> {
        self.put(events, deadline).await
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
    use aws_credential_types::Credentials;

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
            "https://events.eu-west-1.amazonaws.com".into(),
            Account {
                region: "eu-west-1".into(),
                credentials: Credentials::new(
                    "AKIDEXAMPLE",
                    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    None,
                    None,
                    "test",
                ),
            },
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
        let body = bus().put_events_body(&[event(1, 3)]);
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
    fn the_environment_gives_the_account_and_may_override_the_endpoint() {
        let vars = |extra: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                [
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
        let bus = EventBus::from_variables("bus".into(), vars(&[])).unwrap();
        assert_eq!(bus.endpoint, "https://events.eu-west-1.amazonaws.com");
        let local = EventBus::from_variables(
            "bus".into(),
            vars(&[("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:4010")]),
        )
        .unwrap();
        assert_eq!(local.endpoint, "http://127.0.0.1:4010");
        assert!(EventBus::from_variables("bus".into(), |_| None).is_err());
    }
}
