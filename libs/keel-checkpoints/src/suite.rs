//! The shared suite every [`Checkpoints`] adapter passes, and the freshness arithmetic.

use crate::{Checkpoint, Checkpoints, Freshness, Head};

type CaseResult = Result<(), String>;

fn ensure(condition: bool, what: impl FnOnce() -> String) -> CaseResult {
    if condition { Ok(()) } else { Err(what()) }
}

fn error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn at(partition: i32, next_offset: i64) -> Checkpoint {
    Checkpoint {
        partition,
        next_offset,
        event_time_micros: next_offset * 1_000,
    }
}

/// What is saved is read back, per projection.
pub async fn checkpoints_round_trip(store: &impl Checkpoints) -> CaseResult {
    store
        .save("profiles.v1", &[at(0, 10), at(1, 20)])
        .await
        .map_err(error)?;
    store.save("audit.v1", &[at(0, 99)]).await.map_err(error)?;
    let mut read = store.checkpoints("profiles.v1").await.map_err(error)?;
    read.sort_by_key(|c| c.partition);
    ensure(read == [at(0, 10), at(1, 20)], || format!("profiles.v1: {read:?}"))?;
    let other = store.checkpoints("audit.v1").await.map_err(error)?;
    ensure(other == [at(0, 99)], || format!("projections mixed: {other:?}"))
}

/// An older checkpoint saved late never moves a newer one back.
pub async fn checkpoints_never_go_back(store: &impl Checkpoints) -> CaseResult {
    store.save("p.v1", &[at(0, 50)]).await.map_err(error)?;
    store.save("p.v1", &[at(0, 30)]).await.map_err(error)?;
    let read = store.checkpoints("p.v1").await.map_err(error)?;
    ensure(read == [at(0, 50)], || format!("checkpoint went back: {read:?}"))
}

/// Freshness combines checkpoints with the last heads seen.
pub async fn freshness_reports_lag_behind_the_head(store: &impl Checkpoints) -> CaseResult {
    store
        .save(
            "p.v1",
            &[Checkpoint {
                partition: 0,
                next_offset: 8,
                event_time_micros: 1_000_000,
            }],
        )
        .await
        .map_err(error)?;
    let heads = [
        Head {
            partition: 0,
            head_offset: 10,
            observed_at_micros: 4_000_000,
        },
        Head {
            partition: 1,
            head_offset: 0,
            observed_at_micros: 4_000_000,
        },
    ];
    store.save_heads("p.v1", &heads).await.map_err(error)?;
    let freshness = store.freshness("p.v1", 5_000_000).await.map_err(error)?;
    let zero = &freshness.partitions[&0];
    ensure(zero.lag_events == 2 && (zero.lag_seconds - 4.0).abs() < 1e-9, || {
        format!("partition 0: {zero:?}")
    })?;
    let one = &freshness.partitions[&1];
    ensure(one.lag_events == 0 && one.lag_seconds == 0.0, || {
        format!("an empty, caught-up partition: {one:?}")
    })?;
    ensure(freshness.has_applied(0, 7) && !freshness.has_applied(0, 8), || {
        "has_applied is off by one".into()
    })
}

/// Nothing applied and nothing seen: fresh, trivially.
pub async fn an_unknown_projection_is_empty(store: &impl Checkpoints) -> CaseResult {
    let freshness = store.freshness("nothing.v1", 1).await.map_err(error)?;
    ensure(
        freshness
            == Freshness {
                partitions: Default::default(),
            },
        || format!("{freshness:?}"),
    )
}

/// Instantiates the suite: `checkpoints_suite!(make)`, where `make` (evaluated inside each
/// async test returning `Result<(), String>`) yields a fresh store.
#[macro_export]
macro_rules! checkpoints_suite {
    ($make:expr) => {
        $crate::checkpoints_suite!(@case $make, checkpoints_round_trip);
        $crate::checkpoints_suite!(@case $make, checkpoints_never_go_back);
        $crate::checkpoints_suite!(@case $make, freshness_reports_lag_behind_the_head);
        $crate::checkpoints_suite!(@case $make, an_unknown_projection_is_empty);
    };
    (@case $make:expr, $case:ident) => {
        #[tokio::test]
        async fn $case() -> Result<(), String> {
            let store = $make;
            $crate::suite::$case(&store).await
        }
    };
}
