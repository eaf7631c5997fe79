//! What is true of any input, whatever the desk's state: ids in Keel's grammar, bounded
//! text, bounded amounts. Messages name the field, never its value: values may be personal
//! data, and refusals end up in logs and the audit trail.

use keel_domain::DomainError;

/// Longest accepted single-line text (a name, an account, a reason), in bytes.
pub(crate) const MAX_TEXT: usize = 512;

/// Longest accepted summary of an action, in bytes.
pub(crate) const MAX_SUMMARY: usize = 4 * 1024;

/// The largest amount of an action (and of a policy's threshold), in cents: ten billion in
/// the currency's main unit, as for refunds in the customer-support domain. No sum of the
/// amounts a desk could execute overflows a 64-bit total.
pub const MAX_ACTION_CENTS: i64 = 1_000_000_000_000;

/// An id in the grammar of every id Keel takes (`keel-ids`).
pub(crate) fn id(field: &'static str, value: &str) -> Result<(), DomainError> {
    keel_ids::check(field, value).map_err(|error| DomainError::new(keel_ids::InvalidId::CODE, error.to_string()))
}

/// Present, one line, at most `max` bytes.
pub(crate) fn line(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    present(field, value)?;
    keel_ids::check_text(field, value, max).map_err(|error| DomainError::new("invalid_field", error.to_string()))
}

/// Present, at most `max` bytes, with line breaks and tabs but no other control character.
pub(crate) fn paragraph(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    present(field, value)?;
    if value.len() > max {
        return Err(DomainError::new(
            "invalid_field",
            format!("{field} is {} bytes, over the limit of {max}", value.len()),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(DomainError::new(
            "invalid_field",
            format!("{field} holds a control character"),
        ));
    }
    Ok(())
}

fn present(field: &str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::new("invalid_field", format!("{field} is empty")));
    }
    Ok(())
}

/// An amount of 0 to [`MAX_ACTION_CENTS`] cents.
pub(crate) fn amount(field: &str, cents: i64) -> Result<(), DomainError> {
    if (0..=MAX_ACTION_CENTS).contains(&cents) {
        Ok(())
    } else {
        Err(DomainError::new(
            "invalid_amount",
            format!("{field} is 0 to {MAX_ACTION_CENTS} cents, got {cents}"),
        ))
    }
}
