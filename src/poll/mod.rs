//! The poll: discovery of the namespaces to sample, then one recipe per namespace.

pub mod discover;
