//! Logging, set up once per cold start the way Lambda's advanced logging controls ask: JSON lines when
//! `AWS_LAMBDA_LOG_FORMAT=json` (as on Lambda; each line carries the invocation's request id from the runtime's
//! span), readable text otherwise; the level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`.
//!
//! A level, not per-module directives: a level filter spares the function binaries the regular expression
//! engine that `tracing-subscriber`'s `EnvFilter` (and `lambda_runtime`'s default subscriber) links.

use std::str::FromStr;

use tracing_subscriber::filter::LevelFilter;

/// Installs the subscriber; a second call (a test) changes nothing.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| LevelFilter::from_str(level.trim()).ok())
        .unwrap_or(LevelFilter::INFO);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// An error and its sources, outermost first, as the logs show it: `service unavailable: PutEvents failed: ...`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_reads_from_the_outermost_error_to_its_first_cause() {
        let io = std::io::Error::other("connection refused");
        let error = crate::domain::Error::unavailable(io);
        assert_eq!(chain(&error), "service unavailable: connection refused");
    }
}
