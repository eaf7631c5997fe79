//! How many events reference each data subject: what an erasure reports, whatever the
//! length of the subject's history, without scanning it.
//!
//! One row per (tenant, subject, partition of the events topic) holds the count up to and
//! including the event at its `last_offset`. The projector is a partition's only writer and
//! applies its batches in offset order, each after the previous one's writes completed; per
//! batch it reads each touched row once, counts only events past its `last_offset` (so an
//! event replayed after a crash is not counted twice), and writes the new total `USING
//! TIMESTAMP <last offset>` (so a late, older write never replaces a newer total).

use std::collections::BTreeMap;

use futures::future::try_join_all;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::EventMeta;

/// Where `events` reference subjects: per (tenant, subject, partition), the offsets of the
/// events that list the subject among their data subjects, in log order.
fn references(events: &[(i32, i64, EventMeta)]) -> BTreeMap<(&str, &str, i32), Vec<i64>> {
    let mut found: BTreeMap<(&str, &str, i32), Vec<i64>> = BTreeMap::new();
    for (partition, offset, event) in events {
        for subject in &event.data_subjects {
            let offsets = found
                .entry((event.tenant.as_str(), subject.as_str(), *partition))
                .or_default();
            // A subject listed twice by one event counts once.
            if offsets.last() != Some(offset) {
                offsets.push(*offset);
            }
        }
    }
    found
}

/// The total after `offsets`, from the stored `(events, last_offset)`; `None` if no offset
/// is past what is stored (all counted before).
fn advance(stored: Option<(i64, i64)>, offsets: &[i64]) -> Option<(i64, i64)> {
    let (mut events, mut last) = stored.unwrap_or((0, -1));
    let mut changed = false;
    for &offset in offsets {
        if offset > last {
            events += 1;
            last = offset;
            changed = true;
        }
    }
    changed.then_some((events, last))
}

/// The statements of the count table.
pub(crate) struct SubjectCounts {
    select: PreparedStatement,
    upsert: PreparedStatement,
}

impl SubjectCounts {
    pub(crate) async fn prepare(session: &Session) -> Result<Self, scylla::errors::PrepareError> {
        Ok(Self {
            select: session.prepare(include_str!("cql/select_subject_count.cql")).await?,
            upsert: session.prepare(include_str!("cql/upsert_subject_count.cql")).await?,
        })
    }

    /// Counts the references of `events` (one batch of the projector, in log order).
    pub(crate) async fn write(&self, session: &Session, events: &[(i32, i64, EventMeta)]) -> anyhow::Result<()> {
        let found = references(events);
        let reads = found.keys().map(|&(tenant, subject, partition)| async move {
            let rows = session
                .execute_unpaged(&self.select, (tenant, subject, partition))
                .await?
                .into_rows_result()?;
            anyhow::Ok(rows.maybe_first_row::<(i64, i64)>()?)
        });
        let stored = try_join_all(reads).await?;
        let writes = found
            .iter()
            .zip(stored)
            .filter_map(|((&(tenant, subject, partition), offsets), stored)| {
                let (events, last) = advance(stored, offsets)?;
                Some(session.execute_unpaged(&self.upsert, (tenant, subject, partition, events, last, last)))
            });
        try_join_all(writes).await?;
        Ok(())
    }
}

/// How many events of `tenant` reference `subject`, as the projections in `keyspace` have
/// applied them so far (events not yet projected are not in it; 0 if no projector has
/// created the table there yet). Reads one row per partition of the events topic.
pub async fn subject_event_count(
    session: &Session,
    keyspace: &str,
    tenant: &str,
    subject: &str,
) -> anyhow::Result<i64> {
    let exists = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, "subject_event_counts_v1"),
        )
        .await?
        .into_rows_result()?
        .rows_num()
        > 0;
    if !exists {
        return Ok(0);
    }
    let statement =
        format!("SELECT events FROM \"{keyspace}\".subject_event_counts_v1 WHERE tenant = ? AND subject = ?");
    let rows = session
        .query_unpaged(statement, (tenant, subject))
        .await?
        .into_rows_result()?;
    let mut total = 0_i64;
    for row in rows.rows::<(i64,)>()? {
        total = total.saturating_add(row?.0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_offsets_past_the_stored_one_count() {
        assert_eq!(advance(None, &[3, 7]), Some((2, 7)));
        assert_eq!(advance(Some((5, 7)), &[3, 7]), None, "a replay of counted events");
        assert_eq!(
            advance(Some((5, 7)), &[7, 9]),
            Some((6, 9)),
            "a batch that overlaps the count"
        );
    }
}
