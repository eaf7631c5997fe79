//! Upcasters: turn an old payload version into the current type.
//!
//! Avro resolution handles additive changes (a field with a default); an upcaster handles
//! the rest (renames with meaning, splits, computed fields) on the resolved generic value.

use apache_avro::types::Value;

use crate::EnvelopeError;

/// Turns a payload decoded at version `from` into the shape of version `from + 1`.
pub trait Upcaster: Send + Sync {
    /// Full name of the payload schema this upcaster applies to.
    fn schema_name(&self) -> &str;
    /// The version it upgrades from.
    fn source_version(&self) -> i32;
    /// Rewrites the value; it must return the shape of `source_version() + 1`.
    fn upcast(&self, value: Value) -> Result<Value, EnvelopeError>;
}

/// An ordered set of upcasters, applied one version step at a time.
#[derive(Default)]
pub struct Upcasters {
    steps: Vec<Box<dyn Upcaster>>,
}

impl Upcasters {
    /// No upcasters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step.
    pub fn with(mut self, step: impl Upcaster + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// Applies steps from version `from` up to `to`; a missing step is an error.
    pub fn upcast(&self, schema: &str, from: i32, to: i32, mut value: Value) -> Result<Value, EnvelopeError> {
        let mut version = from;
        while version < to {
            let step = self
                .steps
                .iter()
                .find(|s| s.schema_name() == schema && s.source_version() == version)
                .ok_or_else(|| EnvelopeError::NoUpcaster {
                    schema: schema.to_owned(),
                    from: version,
                    to,
                })?;
            value = step.upcast(value)?;
            version += 1;
        }
        Ok(value)
    }
}
