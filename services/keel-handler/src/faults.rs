//! How a failed batch is told apart from a poisoned record, so that no record is retried
//! forever and no infrastructure outage refuses a command.
//!
//! Every failure of a batch is one of:
//! - **infrastructure** (a broker, the CQL store or the KMS out of reach, a transaction
//!   aborted by the broker): nothing is wrong with any command; the batch is rewound and
//!   retried with backoff for as long as it takes, and `/readyz` says so;
//! - **a record** (a command whose own record the broker refuses, whose stored state
//!   cannot be read, whose events the domain cannot apply): that command is *quarantined*,
//!   and the batch is retried at once without it: the command is refused with a reason,
//!   dead-lettered, counted, and the partition moves on;
//! - **unexplained** (any other error): the batch is retried with backoff one command at a
//!   time ([`Isolation`]); a command that fails alone [`POISON_AFTER`] times is quarantined
//!   as `internal_error`.
//! - **fatal** (this instance was fenced): the process exits and is restarted.

use std::collections::HashMap;

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::decide::Rejection;

/// Times a command may fail alone, for an unexplained reason, before it is quarantined.
pub(crate) const POISON_AFTER: u32 = 3;

/// Whether a failed produce is about the record itself (its size or content), so that
/// producing it again can never succeed.
pub(crate) fn record_refused(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MessageProduction(code) => *code,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::PolicyViolation
    )
}

/// Commands found poisoned, by partition and offset, with how each is refused: kept until
/// the batch that refuses them commits (or the partition is revoked).
#[derive(Debug, Default)]
pub(crate) struct Quarantine(HashMap<(i32, i64), Rejection>);

impl Quarantine {
    /// Quarantines the command at `partition`/`offset`.
    pub(crate) fn add(&mut self, partition: i32, offset: i64, rejection: Rejection) {
        tracing::warn!(
            partition,
            offset,
            reason = %rejection.reason,
            message = %rejection.message,
            "command quarantined: it is refused and dead-lettered"
        );
        metrics::counter!("keel_handler_quarantined_total", "reason" => rejection.reason.clone()).increment(1);
        self.0.insert((partition, offset), rejection);
    }

    /// How the command at `partition`/`offset` is refused, if it is quarantined.
    pub(crate) fn get(&self, partition: i32, offset: i64) -> Option<&Rejection> {
        self.0.get(&(partition, offset))
    }

    /// Forgets commands before `next` on `partition`: their batch committed.
    pub(crate) fn committed(&mut self, partition: i32, next: i64) {
        self.0.retain(|(p, offset), _| *p != partition || *offset >= next);
    }

    /// Forgets a revoked partition's commands: its next owner finds them again.
    pub(crate) fn revoked(&mut self, partition: i32) {
        self.0.retain(|(p, _), _| *p != partition);
    }
}

/// Narrows an unexplained failure down to one command: after a batch of several fails,
/// the next commands go one per batch; a command that fails alone [`POISON_AFTER`] times
/// is the one to quarantine.
#[derive(Debug, Default)]
pub(crate) struct Isolation {
    /// Single-command batches still to run before batching again.
    remaining: usize,
    /// The command that failed alone, and how often.
    suspect: Option<((i32, i64), u32)>,
}

impl Isolation {
    /// How many commands the next batch may take.
    pub(crate) fn batch_limit(&self, max_batch: usize) -> usize {
        if self.remaining > 0 { 1 } else { max_batch }
    }

    /// Records an unexplained failure of a batch of `size` commands starting with `first`;
    /// returns the command to quarantine once one has failed alone often enough.
    pub(crate) fn failed(&mut self, first: (i32, i64), size: usize) -> Option<(i32, i64)> {
        if size > 1 {
            self.remaining = self.remaining.max(size);
            self.suspect = None;
            return None;
        }
        let failures = match self.suspect {
            Some((suspect, failures)) if suspect == first => failures + 1,
            _ => 1,
        };
        if failures >= POISON_AFTER {
            self.suspect = None;
            return Some(first);
        }
        self.remaining = self.remaining.max(1);
        self.suspect = Some((first, failures));
        None
    }

    /// Records a committed batch.
    pub(crate) fn succeeded(&mut self) {
        self.remaining = self.remaining.saturating_sub(1);
        self.suspect = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_that_fails_unexplained_is_retried_one_command_at_a_time() {
        let mut isolation = Isolation::default();
        assert_eq!(isolation.batch_limit(200), 200);
        assert_eq!(isolation.failed((0, 10), 3), None);
        assert_eq!(isolation.batch_limit(200), 1);
        isolation.succeeded();
        isolation.succeeded();
        assert_eq!(isolation.batch_limit(200), 1);
        isolation.succeeded();
        assert_eq!(
            isolation.batch_limit(200),
            200,
            "past the failed batch, batching resumes"
        );
    }

    #[test]
    fn a_command_that_fails_alone_three_times_is_the_one_to_quarantine() {
        let mut isolation = Isolation::default();
        assert_eq!(isolation.failed((0, 10), 5), None);
        assert_eq!(isolation.failed((0, 10), 1), None);
        assert_eq!(isolation.failed((0, 10), 1), None);
        assert_eq!(isolation.failed((0, 10), 1), Some((0, 10)));
    }

    #[test]
    fn another_command_failing_starts_the_count_again() {
        let mut isolation = Isolation::default();
        assert_eq!(isolation.failed((0, 10), 1), None);
        assert_eq!(isolation.failed((0, 10), 1), None);
        assert_eq!(isolation.failed((0, 11), 1), None);
        assert_eq!(isolation.failed((0, 11), 1), None);
        assert_eq!(isolation.failed((0, 11), 1), Some((0, 11)));
    }

    #[test]
    fn only_record_errors_blame_the_record() {
        assert!(record_refused(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(!record_refused(&KafkaError::MessageProduction(
            RDKafkaErrorCode::RequestTimedOut
        )));
        assert!(!record_refused(&KafkaError::MessageProduction(
            RDKafkaErrorCode::AllBrokersDown
        )));
    }

    #[test]
    fn a_committed_batch_releases_its_quarantined_commands() {
        let mut quarantine = Quarantine::default();
        quarantine.add(0, 5, Rejection::new("internal_error", "test"));
        quarantine.add(1, 5, Rejection::new("internal_error", "test"));
        quarantine.committed(0, 6);
        assert!(quarantine.get(0, 5).is_none());
        assert!(quarantine.get(1, 5).is_some());
        quarantine.revoked(1);
        assert!(quarantine.get(1, 5).is_none());
    }
}
