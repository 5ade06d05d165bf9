//! Integration tests: the real exporter binary against real sockets, each test in a
//! private network namespace of its own (see `netns`). Needs root.
mod exporter;
mod lifecycle;
mod load;
mod netns;
mod states;
