//! Keel's cross-crate integration tests live beside this file, one file per behaviour
//! family (see `Cargo.toml` for the list). They run against the real Kafka broker and CQL
//! store that `make up` starts; `keel-testkit` says where those are.
//!
//! This library holds what several test files share: a harness that runs the command
//! handler in-process with the production codec, and the read side (projector and query API)
//! over it.

pub mod forensics;
pub mod fuzz;
pub mod handler_harness;
pub mod read_side;
