//! The inventory and order service: domain, services, adapters and the HTTP edge shared by every function.

pub mod domain;
