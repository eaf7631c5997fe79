//! The shared test suite every [`HandlerState`] adapter passes.
//!
//! An adapter's tests instantiate it with [`handler_state_suite!`](crate::handler_state_suite),
//! giving an async expression that makes a fresh, empty state. Each case returns
//! `Err(description)` on a violated expectation.

use uuid::Uuid;

use crate::{HandlerState, StateBatch, StoredResult, StreamRecord, Watermark};

type CaseResult = Result<(), String>;

fn ensure(condition: bool, what: impl FnOnce() -> String) -> CaseResult {
    if condition { Ok(()) } else { Err(what()) }
}

fn stream(tenant: &str, stream: &str, version: u64, position: i64) -> StreamRecord {
    StreamRecord {
        tenant: tenant.into(),
        stream: stream.into(),
        version,
        last_hash: vec![version as u8; 32],
        snapshot_version: 2,
        snapshot: format!("state after v{version}").into_bytes(),
        position,
    }
}

fn streams(records: Vec<StreamRecord>) -> StateBatch {
    StateBatch {
        streams: records,
        ..StateBatch::default()
    }
}

fn error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A fresh state knows nothing.
pub async fn empty_state_has_nothing(state: &impl HandlerState) -> CaseResult {
    ensure(state.stream("acme", "c-1").await.map_err(error)?.is_none(), || {
        "a stream in an empty state".into()
    })?;
    ensure(
        state.result("acme", Uuid::new_v4()).await.map_err(error)?.is_none(),
        || "a result in an empty state".into(),
    )?;
    ensure(state.watermark("h", "t", 0).await.map_err(error)?.is_none(), || {
        "a watermark in an empty state".into()
    })
}

/// What is written is read back whole.
pub async fn stream_state_round_trips(state: &impl HandlerState) -> CaseResult {
    let record = stream("acme", "c-1", 3, 41);
    state.apply(&streams(vec![record.clone()])).await.map_err(error)?;
    let read = state.stream("acme", "c-1").await.map_err(error)?;
    ensure(read.as_ref() == Some(&record), || {
        format!("wrote {record:?}, read {read:?}")
    })
}

/// A replayed older write never overwrites a newer one: replays converge.
pub async fn older_positions_lose(state: &impl HandlerState) -> CaseResult {
    let newer = stream("acme", "c-1", 5, 90);
    state.apply(&streams(vec![newer.clone()])).await.map_err(error)?;
    state
        .apply(&streams(vec![stream("acme", "c-1", 4, 70)]))
        .await
        .map_err(error)?;
    let read = state.stream("acme", "c-1").await.map_err(error)?;
    ensure(read.as_ref() == Some(&newer), || {
        format!("an older write replaced the newer one: {read:?}")
    })
}

/// Applying the same batch twice leaves what applying it once does.
pub async fn replaying_a_batch_is_idempotent(state: &impl HandlerState) -> CaseResult {
    let command_id = Uuid::new_v4();
    let batch = StateBatch {
        streams: vec![stream("acme", "c-1", 1, 10), stream("acme", "c-2", 1, 11)],
        results: vec![StoredResult {
            tenant: "acme".into(),
            command_id,
            result: b"accepted".to_vec(),
            position: 7,
        }],
        watermarks: vec![Watermark {
            consumer: "h".into(),
            topic: "events".into(),
            partition: 2,
            next_offset: 12,
        }],
    };
    state.apply(&batch).await.map_err(error)?;
    state.apply(&batch).await.map_err(error)?;
    ensure(
        state.stream("acme", "c-2").await.map_err(error)?.as_ref() == Some(&batch.streams[1]),
        || "c-2 after replay".into(),
    )?;
    let result = state.result("acme", command_id).await.map_err(error)?;
    ensure(result.as_ref() == Some(&batch.results[0]), || {
        format!("result after replay: {result:?}")
    })?;
    let mark = state.watermark("h", "events", 2).await.map_err(error)?;
    ensure(mark == Some(12), || format!("watermark after replay: {mark:?}"))
}

/// Watermarks only move forward.
pub async fn watermarks_only_advance(state: &impl HandlerState) -> CaseResult {
    let mark = |next_offset| StateBatch {
        watermarks: vec![Watermark {
            consumer: "h".into(),
            topic: "events".into(),
            partition: 0,
            next_offset,
        }],
        ..StateBatch::default()
    };
    state.apply(&mark(100)).await.map_err(error)?;
    state.apply(&mark(40)).await.map_err(error)?;
    let read = state.watermark("h", "events", 0).await.map_err(error)?;
    ensure(read == Some(100), || format!("watermark went back: {read:?}"))?;
    let other_partition = state.watermark("h", "events", 1).await.map_err(error)?;
    ensure(other_partition.is_none(), || "partitions share a watermark".into())
}

/// The same stream id or command id in two tenants are two different things.
pub async fn tenants_are_separate(state: &impl HandlerState) -> CaseResult {
    let command_id = Uuid::new_v4();
    let result = |tenant: &str, body: &[u8]| StoredResult {
        tenant: tenant.into(),
        command_id,
        result: body.to_vec(),
        position: 1,
    };
    let batch = StateBatch {
        streams: vec![stream("acme", "c-1", 1, 1), stream("globex", "c-1", 9, 1)],
        results: vec![result("acme", b"a"), result("globex", b"g")],
        watermarks: vec![],
    };
    state.apply(&batch).await.map_err(error)?;
    let acme = state.stream("acme", "c-1").await.map_err(error)?.map(|r| r.version);
    let globex = state.stream("globex", "c-1").await.map_err(error)?.map(|r| r.version);
    ensure(acme == Some(1) && globex == Some(9), || {
        format!("tenants mixed: acme {acme:?}, globex {globex:?}")
    })?;
    let acme_result = state.result("acme", command_id).await.map_err(error)?.map(|r| r.result);
    ensure(acme_result.as_deref() == Some(b"a".as_slice()), || {
        format!("acme's result: {acme_result:?}")
    })?;
    ensure(
        state.result("initech", command_id).await.map_err(error)?.is_none(),
        || "a result leaked to another tenant".into(),
    )
}

/// Instantiates the shared suite for an adapter: `handler_state_suite!(make)` where `make`
/// is an expression, evaluated inside each async test returning `Result<(), String>`, that
/// yields a fresh, empty state (it may use `.await` and `?` with a `String` error).
#[macro_export]
macro_rules! handler_state_suite {
    (@cases $make:expr) => {
        $crate::handler_state_suite!(@case $make, empty_state_has_nothing);
        $crate::handler_state_suite!(@case $make, stream_state_round_trips);
        $crate::handler_state_suite!(@case $make, older_positions_lose);
        $crate::handler_state_suite!(@case $make, replaying_a_batch_is_idempotent);
        $crate::handler_state_suite!(@case $make, watermarks_only_advance);
        $crate::handler_state_suite!(@case $make, tenants_are_separate);
    };
    (@case $make:expr, $case:ident) => {
        #[tokio::test]
        async fn $case() -> Result<(), String> {
            let state = $make;
            $crate::suite::$case(&state).await
        }
    };
    ($make:expr) => {
        $crate::handler_state_suite!(@cases $make);
    };
}
