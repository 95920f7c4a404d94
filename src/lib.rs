//! sonde: one binary that observes a Linux server.
//!
//! The data's way through the crate, one module per stage:
//! [`collect`] reads the machine → [`store`] persists samples →
//! [`ship`] sends them to `[[remote_write]]` destinations; [`serve`] answers
//! HTTP from the store. [`model`] is the sample model every stage speaks,
//! [`prompb`] Prometheus's remote protocol on the wire, [`memory`] how
//! memory is given back once a churn of processes is forgotten, [`privilege`]
//! which capabilities sonde uses and which it gives up once running.

pub mod alert;
pub mod bench;
pub mod civil;
pub mod collect;
pub mod config;
pub mod doctor;
pub mod glob;
pub mod memory;
pub mod model;
pub mod outbound;
pub mod privilege;
pub mod prompb;
pub mod query;
pub mod requests;
pub mod run;
pub mod serve;
pub mod ship;
pub mod store;
pub mod xxh64;
