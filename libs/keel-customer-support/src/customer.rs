//! Registering, deleting, emailing and referrals: the commands about the customer itself.

use keel_domain::DomainError;

use crate::{CustomerState, SupportEvent};

/// Longest accepted name, address, subject line or id, in bytes.
const MAX_FIELD: usize = 512;
/// Longest accepted email body, in bytes.
const MAX_BODY: usize = 16 * 1024;

/// Refuses commands on a stream that is not open: never registered, or deleted.
pub(crate) fn ensure_active(state: &CustomerState) -> Result<&str, DomainError> {
    match &state.customer_id {
        None => Err(DomainError::new(
            "customer_not_registered",
            "the customer is not registered",
        )),
        Some(_) if state.deleted => Err(DomainError::new("customer_deleted", "the customer was deleted")),
        Some(id) => Ok(id),
    }
}

/// A present text of at most `max` bytes. Messages name the field, never its value: values
/// may be personal data, and refusals end up in logs and the audit trail.
pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::new("invalid_field", format!("{field} is empty")));
    }
    if value.len() > max {
        return Err(DomainError::new(
            "invalid_field",
            format!("{field} is longer than {max} bytes"),
        ));
    }
    Ok(())
}

/// A data-subject id, in the grammar of every id Keel takes (`keel-ids`): it names a key,
/// and later an erasure. (The runtime checks it again when it seals a field to it.)
fn id(field: &'static str, value: &str) -> Result<(), DomainError> {
    keel_ids::check(field, value).map_err(|error| DomainError::new(keel_ids::InvalidId::CODE, error.to_string()))
}

fn email_address(field: &str, value: &str) -> Result<(), DomainError> {
    text(field, value, MAX_FIELD)?;
    let well_formed = value
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
        && !value.chars().any(char::is_whitespace);
    if well_formed {
        Ok(())
    } else {
        Err(DomainError::new(
            "invalid_field",
            format!("{field} is not an email address"),
        ))
    }
}

pub(crate) fn register(
    state: &CustomerState,
    customer_id: &str,
    name: &str,
    email: &str,
    address: &str,
) -> Result<Vec<SupportEvent>, DomainError> {
    if state.customer_id.is_some() {
        return Err(DomainError::new(
            "customer_already_registered",
            format!("customer {customer_id} is already registered"),
        ));
    }
    id("customer_id", customer_id)?;
    text("name", name, MAX_FIELD)?;
    email_address("email", email)?;
    text("address", address, MAX_FIELD)?;
    Ok(vec![SupportEvent::CustomerRegistered {
        customer_id: customer_id.to_owned(),
        name: name.to_owned(),
        email: email.to_owned(),
        address: address.to_owned(),
    }])
}

pub(crate) fn delete(state: &CustomerState, reason: &str) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    text("reason", reason, MAX_FIELD)?;
    Ok(vec![SupportEvent::CustomerDeleted {
        customer_id,
        reason: reason.to_owned(),
    }])
}

pub(crate) fn send_email(
    state: &CustomerState,
    email_id: &str,
    to: &str,
    subject: &str,
    body: &str,
) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    text("email_id", email_id, MAX_FIELD)?;
    if state.emails_sent.contains(email_id) {
        return Err(DomainError::new(
            "email_already_sent",
            format!("email {email_id} was already sent"),
        ));
    }
    email_address("to", to)?;
    text("subject", subject, MAX_FIELD)?;
    text("body", body, MAX_BODY)?;
    Ok(vec![SupportEvent::EmailSent {
        customer_id,
        email_id: email_id.to_owned(),
        to: to.to_owned(),
        subject: subject.to_owned(),
        body: body.to_owned(),
    }])
}

pub(crate) fn refer_friend(
    state: &CustomerState,
    friend_id: &str,
    friend_name: &str,
    friend_email: &str,
    message: &str,
) -> Result<Vec<SupportEvent>, DomainError> {
    let customer_id = ensure_active(state)?.to_owned();
    id("friend_id", friend_id)?;
    if friend_id == customer_id {
        return Err(DomainError::new("invalid_field", "a customer cannot refer themselves"));
    }
    if state.referrals.contains(friend_id) {
        return Err(DomainError::new(
            "friend_already_referred",
            format!("friend {friend_id} was already referred"),
        ));
    }
    text("friend_name", friend_name, MAX_FIELD)?;
    email_address("friend_email", friend_email)?;
    text("message", message, MAX_BODY)?;
    Ok(vec![SupportEvent::FriendReferred {
        customer_id,
        friend_id: friend_id.to_owned(),
        friend_name: friend_name.to_owned(),
        friend_email: friend_email.to_owned(),
        message: message.to_owned(),
    }])
}

pub(crate) const MAX_TEXT: usize = MAX_FIELD;
