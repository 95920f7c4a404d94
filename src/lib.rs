//! sonde: one binary that observes a Linux server.
//!
//! The data's way through the crate, one module per stage:
//! [`collect`] reads the machine → [`store`] persists samples →
//! [`serve`] answers HTTP. [`model`] is the sample model every stage speaks.

pub mod bench;
pub mod collect;
pub mod config;
pub mod doctor;
pub mod model;
pub mod query;
pub mod run;
pub mod serve;
pub mod store;
