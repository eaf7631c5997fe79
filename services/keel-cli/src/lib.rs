//! The `keel` command line's parts, as a library so tests and the demo share them: the
//! development tenants and credentials ([`dev`]) and the command client ([`command`]).

pub mod command;
pub mod dev;
