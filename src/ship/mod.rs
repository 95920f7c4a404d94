//! Shipping: every sample the store accepted goes out to the
//! `[[remote_write]]` destinations, in order, through a durable queue in
//! sonde's database ([`queue`]), one sender thread per destination
//! ([`send`]). This stage comes after the store and serves no HTTP: it only
//! reads what the store queued and posts it.

pub mod queue;
pub mod send;
