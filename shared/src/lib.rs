//! The inventory and order service: domain, services, adapters and the HTTP edge shared by every function.

pub mod aws;
pub mod bootstrap;
pub mod config;
pub mod deploy;
pub mod domain;
pub mod events;
pub mod http;
pub mod jobs;
pub mod logging;
pub mod memory;
pub mod ports;
pub mod postgres;
pub mod service;
pub mod views;
