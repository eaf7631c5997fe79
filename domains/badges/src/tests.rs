//! Given/when/then tests of the badge: every rule and every refusal, with no servers.

use keel_domain::DomainError;
use keel_domain::testing::Scenario;

use crate::{Badge, BadgeCommand as C, BadgeEvent as E};

fn issue(visitor_id: &str, visitor_name: &str) -> C {
    C::IssueBadge {
        badge_id: "b-7".into(),
        visitor_id: visitor_id.into(),
        visitor_name: visitor_name.into(),
    }
}

fn issued(visitor_id: &str, visitor_name: &str) -> E {
    E::BadgeIssued {
        badge_id: "b-7".into(),
        visitor_id: visitor_id.into(),
        visitor_name: visitor_name.into(),
    }
}

fn give_back() -> C {
    C::ReturnBadge {
        reason: "visit over".into(),
    }
}

fn code(result: Result<Vec<E>, DomainError>) -> &'static str {
    result.expect_err("the command should be refused").code
}

#[test]
fn a_badge_at_the_desk_is_issued() {
    let scenario = Scenario::<Badge>::given([]);
    assert_eq!(
        scenario.when(&issue("v-ada", "Ada Lovelace")),
        Ok(vec![issued("v-ada", "Ada Lovelace")])
    );
}

#[test]
fn a_badge_that_is_out_is_not_issued_again() {
    let scenario = Scenario::<Badge>::given([issued("v-ada", "Ada Lovelace")]);
    assert_eq!(
        code(scenario.when(&issue("v-alan", "Alan Turing"))),
        "badge_already_issued"
    );
}

#[test]
fn returning_a_badge_compensates_its_issue() {
    let scenario = Scenario::<Badge>::given([issued("v-ada", "Ada Lovelace")]);
    let returned = E::BadgeReturned {
        compensates: scenario.event_id(0),
        reason: "visit over".into(),
    };
    assert_eq!(scenario.when(&give_back()), Ok(vec![returned]));
}

#[test]
fn a_badge_at_the_desk_cannot_be_returned() {
    assert_eq!(
        code(Scenario::<Badge>::given([]).when(&give_back())),
        "badge_not_issued"
    );
}

#[test]
fn a_returned_badge_is_issued_again() {
    let first = Scenario::<Badge>::given([issued("v-ada", "Ada Lovelace")]);
    let returned = E::BadgeReturned {
        compensates: first.event_id(0),
        reason: "visit over".into(),
    };
    let scenario = Scenario::<Badge>::given([issued("v-ada", "Ada Lovelace"), returned]);
    assert_eq!(
        scenario.when(&issue("v-alan", "Alan Turing")),
        Ok(vec![issued("v-alan", "Alan Turing")])
    );
}

#[test]
fn ids_and_text_are_checked_without_echoing_them() {
    let scenario = Scenario::<Badge>::given([]);
    assert_eq!(code(scenario.when(&issue("v ada", "Ada Lovelace"))), "invalid_id");
    let refusal = scenario
        .when(&issue("v-ada", "Ada\nLovelace"))
        .expect_err("a line break");
    assert_eq!(refusal.code, "invalid_field");
    assert!(!refusal.message.contains("Ada"), "{}", refusal.message);
    assert_eq!(code(scenario.when(&issue("v-ada", " "))), "invalid_field");
    assert_eq!(code(scenario.when(&issue("v-ada", &"a".repeat(257)))), "invalid_field");
    let silent = C::ReturnBadge { reason: String::new() };
    let out = Scenario::<Badge>::given([issued("v-ada", "Ada Lovelace")]);
    assert_eq!(code(out.when(&silent)), "invalid_field");
}

#[test]
fn the_state_holds_no_personal_data() -> Result<(), serde_json::Error> {
    let scenario = Scenario::<Badge>::given([issued("v-ada", "Ada Lovelace")]);
    let snapshot = serde_json::to_string(scenario.state())?;
    assert!(!snapshot.contains("Ada") && !snapshot.contains("v-ada"), "{snapshot}");
    Ok(())
}
