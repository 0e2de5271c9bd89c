//! The AWS APIs the functions call, written by hand over `aws-sigv4` rather than with the AWS SDK's clients
//! (measured: see "AWS calls" in docs/architecture.md): one signed JSON 1.1 call ([`call`]) that Secrets
//! Manager's `GetSecretValue` ([`secrets`]) and EventBridge's `PutEvents` ([`eventbridge`]) both make, and the
//! RDS IAM auth token ([`rds`]), all signed as the [`Account`] Lambda gives the function in its environment.

pub mod call;
pub mod eventbridge;
pub mod rds;
pub mod secrets;

pub use call::{Account, AccountError, CallError, Service};
