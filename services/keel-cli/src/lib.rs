//! The `keel` command line's parts, as a library so tests and the demo share them: the
//! development tenants and credentials ([`dev`]), the command client ([`command`]), which
//! sends commands of any domain through its schema files ([`schemas`]), and the admin
//! commands ([`admin`]).

pub mod admin;
pub mod command;
pub mod demo;
pub mod dev;
pub mod schemas;
