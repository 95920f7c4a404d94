//! Go text/template with Prometheus's template functions (being built).
