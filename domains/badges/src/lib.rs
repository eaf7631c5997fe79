//! Visitor badges: the smallest complete Keel domain, written only against Keel's public
//! crates. `docs/your-domain.md` walks through it, quoting these files.
//!
//! One stream per badge (the stream id is the badge id). The front desk issues the badge to
//! a visitor, whose name is personal data, and takes it back when the visit is over; a
//! returned badge can be issued again. The crate plugs the domain into each of Keel's
//! runtimes:
//!
//! - [`Badge`], the aggregate ([`keel_domain::Aggregate`] + [`keel_domain::WireSchemas`],
//!   schemas in `schemas/badges/`), for the command handler;
//! - [`BadgeProjections`], the table `badges_v1` ([`keel_projection::Projections`]), for the
//!   projector;
//! - [`BadgeReads`], the route `GET /v1/tenants/{tenant}/badges/{badge}`
//!   ([`keel_query::ReadSide`]), for the query API;
//! - `src/main.rs`, the app: one binary, `keel-badges handler|projector|query|rebuild`.

mod command;
mod decide;
mod event;
mod projection;
mod query;
mod state;

pub use command::BadgeCommand;
pub use event::BadgeEvent;
pub use projection::{BADGES, BadgeProjections, BadgeRow};
pub use query::{BadgeReads, BadgeView, BadgesApi};
pub use state::BadgeState;

use keel_domain::{Aggregate, DomainError, Recorded, WireSchemas};

/// A visitor badge: the aggregate, one stream per badge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Badge;

impl Aggregate for Badge {
    const NAME: &'static str = "badge";
    type State = BadgeState;
    type Command = BadgeCommand;
    type Event = BadgeEvent;

    fn handle(state: &BadgeState, command: &BadgeCommand) -> Result<Vec<BadgeEvent>, DomainError> {
        match command {
            BadgeCommand::IssueBadge {
                badge_id,
                visitor_id,
                visitor_name,
            } => decide::issue(state, badge_id, visitor_id, visitor_name),
            BadgeCommand::ReturnBadge { reason } => decide::give_back(state, reason),
        }
    }

    fn apply(state: BadgeState, event: &BadgeEvent, recorded: &Recorded) -> BadgeState {
        state.apply(event, recorded)
    }
}

impl WireSchemas for Badge {
    const COMMAND_NAMESPACE: &'static str = "dev.keel.badges.commands";
    const EVENT_NAMESPACE: &'static str = "dev.keel.badges.events";
    const SCHEMAS: &'static [&'static str] = &[
        include_str!("../../../schemas/badges/commands/IssueBadge.v1.avsc"),
        include_str!("../../../schemas/badges/commands/ReturnBadge.v1.avsc"),
        include_str!("../../../schemas/badges/events/BadgeIssued.v1.avsc"),
        include_str!("../../../schemas/badges/events/BadgeReturned.v1.avsc"),
    ];
}

#[cfg(test)]
mod tests;
