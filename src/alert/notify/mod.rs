//! Built-in receivers, routing, grouping, silences and inhibition (being built).
