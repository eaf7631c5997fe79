//! Freshness on every answer, and read-your-writes.
//!
//! Every answer is `{"data": …, "freshness": {…}, "stale": false}`. A client that has just
//! sent a command passes the position from its result (`?after=<partition>:<offset>`); the
//! API waits up to `wait_ms` (bounded by the server's maximum) for the projection to apply
//! it, then answers with the fresh data, or — if it did not get there — 503 with the
//! freshness (`on_timeout=fail`, the default) or the data it has, marked stale
//! (`on_timeout=stale`).

use std::time::Duration;

use keel_checkpoints::{Checkpoints, Freshness};
use keel_service::now_micros;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;

/// An answer and how fresh it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Fresh<T> {
    /// The data.
    pub data: T,
    /// Per partition: applied position, its event time, lag.
    pub freshness: Freshness,
    /// True when the client asked for a position the projection has not reached.
    pub stale: bool,
    /// The generation of the projections that answered (their keyspace): it changes when a
    /// rebuild switches over.
    pub generation: String,
}

/// The read-your-writes parameters of a request; a route documents them with
/// `params(Consistency)`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Consistency {
    /// Read-your-writes: `<partition>:<offset>` from a command result; wait until the
    /// projection has applied it.
    #[param(pattern = r"^[0-9]+:[0-9]+$")]
    pub after: Option<String>,
    /// How long to wait for `after`, in ms (capped by the server).
    pub wait_ms: Option<u64>,
    /// If the wait runs out: `fail` (503 with the freshness, the default) or `stale` (the
    /// data, marked stale).
    #[param(value_type = Option<OnTimeout>, inline)]
    pub on_timeout: Option<String>,
}

/// What to answer when read-your-writes runs out of time (the `on_timeout` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OnTimeout {
    /// 503 `not_fresh`, with the freshness reached.
    Fail,
    /// 200 with the data there is, marked `stale`.
    Stale,
}

/// A position in the events topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl Consistency {
    /// The position `after` names, if any; a malformed or negative one is a bad parameter.
    pub fn position(&self) -> Result<Option<Position>, ApiError> {
        let Some(after) = &self.after else { return Ok(None) };
        let bad = |reason: &str| ApiError::BadParameter {
            name: "after",
            reason: reason.into(),
        };
        let (partition, offset) = after
            .split_once(':')
            .ok_or_else(|| bad("expected <partition>:<offset>"))?;
        let partition = partition.parse().map_err(|_| bad("the partition is not a number"))?;
        let offset = offset.parse().map_err(|_| bad("the offset is not a number"))?;
        if partition < 0 || offset < 0 {
            return Err(bad("partition and offset must not be negative"));
        }
        Ok(Some(Position { partition, offset }))
    }

    /// What `on_timeout` asks for (`fail` by default); not `fail` or `stale` is an error.
    pub fn on_timeout(&self) -> Result<OnTimeout, ApiError> {
        match self.on_timeout.as_deref() {
            None | Some("fail") => Ok(OnTimeout::Fail),
            Some("stale") => Ok(OnTimeout::Stale),
            Some(_) => Err(ApiError::BadParameter {
                name: "on_timeout",
                reason: "expected fail or stale".into(),
            }),
        }
    }

    /// Whether `on_timeout` asks for stale data rather than a 503.
    pub fn stale_allowed(&self) -> Result<bool, ApiError> {
        Ok(self.on_timeout()? == OnTimeout::Stale)
    }
}

/// Waits, as the request asks and within `max_wait`, for `projection` to reach the asked
/// position; returns its freshness and whether the answer is stale, or `NotFresh`.
pub async fn wait_for(
    checkpoints: &impl Checkpoints,
    projection: &str,
    consistency: &Consistency,
    max_wait: Duration,
) -> Result<(Freshness, bool), ApiError> {
    let position = consistency.position()?;
    let stale_allowed = consistency.stale_allowed()?;
    let wait = Duration::from_millis(consistency.wait_ms.unwrap_or(0)).min(max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let freshness = checkpoints
            .freshness(projection, now_micros())
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?;
        let Some(position) = position else {
            return Ok((freshness, false));
        };
        if freshness.has_applied(position.partition, position.offset) {
            return Ok((freshness, false));
        }
        if tokio::time::Instant::now() >= deadline {
            return if stale_allowed {
                Ok((freshness, true))
            } else {
                Err(ApiError::NotFresh(freshness))
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
