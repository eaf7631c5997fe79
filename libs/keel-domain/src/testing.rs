//! Given/when/then tests of an aggregate, with no servers: given past events, when a
//! command arrives, then these events (or this refusal).

use uuid::Uuid;

use crate::{Aggregate, DomainError, Recorded};

/// A stream's history to test a command against.
pub struct Scenario<A: Aggregate> {
    state: A::State,
    version: u64,
    event_ids: Vec<Uuid>,
}

impl<A: Aggregate> Scenario<A> {
    /// A stream whose past is `events`, recorded with versions 1, 2, … and fresh ids.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut scenario = Self {
            state: A::State::default(),
            version: 0,
            event_ids: Vec::new(),
        };
        for event in events {
            scenario.record(&event);
        }
        scenario
    }

    fn record(&mut self, event: &A::Event) {
        self.version += 1;
        let recorded = Recorded {
            event_id: Uuid::new_v4(),
            version: self.version,
        };
        self.event_ids.push(recorded.event_id);
        self.state = A::apply(std::mem::take(&mut self.state), event, &recorded);
    }

    /// The id given to the `index`-th past event (0-based), for commands that compensate it.
    ///
    /// # Panics
    /// If there is no such event: the test itself is wrong.
    pub fn event_id(&self, index: usize) -> Uuid {
        self.event_ids[index]
    }

    /// The state folded from the past events.
    pub fn state(&self) -> &A::State {
        &self.state
    }

    /// Runs `command` against the state.
    pub fn when(&self, command: &A::Command) -> Result<Vec<A::Event>, DomainError> {
        A::handle(&self.state, command)
    }
}
