//! Keel's command handler.
//!
//! Consumes command envelopes from `keel.commands`, decides (authenticate, authorise,
//! deduplicate, check the expected version, run the domain), and appends sealed, chained
//! events to `keel.events` with one result per command on `keel.command-results`, in one
//! Kafka transaction with the command's offset: exactly once. See `docs/architecture.md`.

pub mod decide;
