use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema};
use keel_customer_support::{Customer, SupportCommand};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::*;

/// The repository's `schemas/`.
fn repository_schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn header() -> CommandHeader {
    CommandHeader {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "c-1".into(),
        expected_version: None,
        issued_at_micros: 1_700_000_000_000_000,
        actor: keel_codec::to_wire_actor(
            &keel_auth::Actor {
                kind: keel_auth::ActorKind::Agent,
                id: "support-bot".into(),
            },
            &[],
            None,
        ),
        credential: "token".into(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    }
}

/// A schemas directory of `(relative path, document)` files.
fn directory(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("creates");
        std::fs::write(path, text).expect("writes");
    }
    dir
}

/// The message of an error with its causes, as `keel` prints it.
fn message(error: &anyhow::Error) -> String {
    format!("{error:#}")
}

/// A payload for every command of the customer-support domain, and the command it is.
fn support_examples() -> Vec<(&'static str, Json, SupportCommand)> {
    let cancellation = Uuid::new_v4();
    let refund = Uuid::new_v4();
    vec![
        (
            "RegisterCustomer",
            json!({"customer_id": "c-1", "name": "Ada", "email": "ada@example.com", "address": "1 Wharf"}),
            SupportCommand::RegisterCustomer {
                customer_id: "c-1".into(),
                name: "Ada".into(),
                email: "ada@example.com".into(),
                address: "1 Wharf".into(),
            },
        ),
        (
            "DeleteCustomer",
            json!({"reason": "asked"}),
            SupportCommand::DeleteCustomer { reason: "asked".into() },
        ),
        (
            "SendEmail",
            json!({"email_id": "e-1", "to": "ada@example.com", "subject": "Hi", "body": "Hello"}),
            SupportCommand::SendEmail {
                email_id: "e-1".into(),
                to: "ada@example.com".into(),
                subject: "Hi".into(),
                body: "Hello".into(),
            },
        ),
        (
            "ReferFriend",
            json!({"friend_id": "f-1", "friend_name": "Bo", "friend_email": "bo@example.com", "message": "try it"}),
            SupportCommand::ReferFriend {
                friend_id: "f-1".into(),
                friend_name: "Bo".into(),
                friend_email: "bo@example.com".into(),
                message: "try it".into(),
            },
        ),
        (
            "StartSubscription",
            json!({"subscription_id": "s-1", "plan": "pro"}),
            SupportCommand::StartSubscription {
                subscription_id: "s-1".into(),
                plan: "pro".into(),
            },
        ),
        (
            "CancelSubscription",
            json!({"subscription_id": "s-1", "reason": "moving"}),
            SupportCommand::CancelSubscription {
                subscription_id: "s-1".into(),
                reason: "moving".into(),
            },
        ),
        (
            "ReinstateSubscription",
            json!({"subscription_id": "s-1", "compensates": cancellation.to_string()}),
            SupportCommand::ReinstateSubscription {
                subscription_id: "s-1".into(),
                compensates: cancellation,
            },
        ),
        (
            "IssueRefund",
            json!({"refund_id": "r-1", "amount_cents": 900, "reason": "late"}),
            SupportCommand::IssueRefund {
                refund_id: "r-1".into(),
                amount_cents: 900,
                reason: "late".into(),
            },
        ),
        (
            "ReverseRefund",
            json!({"refund_id": "r-1", "compensates": refund.to_string()}),
            SupportCommand::ReverseRefund {
                refund_id: "r-1".into(),
                compensates: refund,
            },
        ),
    ]
}

#[test]
fn every_customer_support_command_schema_encodes_what_the_handler_decodes_into_the_command() {
    let schemas = CommandSchemas::load(&repository_schemas().join("customer-support")).expect("loads");
    let examples = support_examples();
    let covered: BTreeSet<&str> = examples.iter().map(|(command_type, _, _)| *command_type).collect();
    assert_eq!(
        schemas.types().get("dev.keel.support.commands"),
        Some(&covered),
        "an example for every schema in schemas/customer-support/commands, and no other"
    );
    let handler = Wire::new::<Customer>().expect("the domain's schemas parse");
    for (command_type, fields, expected) in examples {
        let bytes = schemas
            .encode(header(), command_type, None, &fields)
            .unwrap_or_else(|error| panic!("{command_type}: {error:#}"));
        let (envelope, command) = handler
            .decode_command::<SupportCommand>(&bytes)
            .unwrap_or_else(|error| panic!("{command_type}: {}", error.error));
        assert_eq!(command, expected);
        assert_eq!(envelope.command_type, command_type);
    }
}

#[test]
fn the_repository_schemas_define_the_customer_support_commands_once() {
    let schemas = CommandSchemas::load(&repository_schemas()).expect("loads");
    assert_eq!(
        schemas.namespace_of("IssueRefund", None).expect("known"),
        "dev.keel.support.commands"
    );
    assert!(
        schemas.types().keys().all(|namespace| namespace.ends_with(".commands")),
        "events and envelopes are left alone: {:?}",
        schemas.types()
    );
}

/// A value of `schema` for a payload, and how the handler's codec gives it back as JSON
/// (bytes come back as arrays of numbers; everything else as given).
fn sample(schema: &Schema, names: &HashMap<Name, &Schema>, depth: usize) -> (Json, Json) {
    let same = |json: Json| (json.clone(), json);
    match schema {
        Schema::Null => same(Json::Null),
        Schema::Boolean => same(json!(true)),
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => same(json!(7)),
        Schema::Float | Schema::Double => same(json!(0.5)),
        Schema::String => same(json!("text")),
        Schema::Uuid(_) => same(json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
        Schema::Bytes => (json!("ab"), json!([97, 98])),
        Schema::Fixed(fixed) => (json!("a".repeat(fixed.size)), json!(vec![97; fixed.size])),
        Schema::Enum(enumeration) => same(json!(enumeration.symbols.last().expect("a symbol"))),
        Schema::Array(array) => {
            let (given, back) = sample(&array.items, names, depth + 1);
            (json!([given]), json!([back]))
        }
        Schema::Map(map) => {
            let (given, back) = sample(&map.types, names, depth + 1);
            (json!({"key": given}), json!({"key": back}))
        }
        Schema::Record(record) => {
            let (mut given, mut back) = (serde_json::Map::new(), serde_json::Map::new());
            for field in &record.fields {
                let (g, b) = sample(&field.schema, names, depth + 1);
                given.insert(field.name.clone(), g);
                back.insert(field.name.clone(), b);
            }
            (Json::Object(given), Json::Object(back))
        }
        Schema::Union(union) => {
            let variants = union.variants();
            // The first branch that is not null, but null deep down a recursive type.
            match variants.iter().find(|branch| !matches!(branch, Schema::Null)) {
                Some(branch) if depth < 4 || !union.is_nullable() => sample(branch, names, depth + 1),
                _ => same(Json::Null),
            }
        }
        Schema::Ref { name } => sample(names.get(name).expect("a known name"), names, depth + 1),
        Schema::Decimal(_) | Schema::BigDecimal | Schema::Duration(_) => {
            panic!("a command schema has a field `keel command send` cannot give: {schema:?}")
        }
    }
}

#[test]
fn every_command_of_every_domain_folder_encodes_what_its_codec_decodes() {
    let schemas = CommandSchemas::load(&repository_schemas()).expect("loads");
    let mut encoded = 0;
    for (namespace, names) in schemas.types() {
        let wire = schemas.wire(namespace).expect("the namespace's schemas parse");
        for command_type in names {
            let newest = schemas
                .documents
                .iter()
                .filter(|document| document.namespace == namespace && document.name == command_type)
                .max_by_key(|document| document.version)
                .expect("a document");
            let schema = Schema::parse_str(&newest.text).expect("parses");
            let resolved = ResolvedSchema::new(&schema).expect("resolves");
            let (given, back) = sample(&schema, resolved.get_names(), 0);
            let bytes = schemas
                .encode(header(), command_type, Some(namespace), &given)
                .unwrap_or_else(|error| panic!("{namespace}.{command_type}: {error:#}"));
            let (envelope, decoded) = wire
                .decode_command::<Json>(&bytes)
                .unwrap_or_else(|error| panic!("{namespace}.{command_type}: {}", error.error));
            assert_eq!(decoded, json!({ command_type: back }), "{namespace}.{command_type}");
            assert_eq!(envelope.payload.schema_name, format!("{namespace}.{command_type}"));
            encoded += 1;
        }
    }
    assert_eq!(
        encoded,
        schemas
            .documents
            .iter()
            .map(|d| (&d.namespace, &d.name))
            .collect::<BTreeSet<_>>()
            .len()
    );
    assert!(
        encoded >= support_examples().len(),
        "found only {encoded} command schemas"
    );
}

/// A second domain, written here: its one command has an enum, a nullable field, a long,
/// an array, and a second version; its events and anything not a command are ignored.
fn approvals() -> tempfile::TempDir {
    directory(&[
        (
            "approvals/commands/Decide.v1.avsc",
            r#"{"type": "record", "name": "Decide", "namespace": "dev.keel.synthetic.commands",
                "keel.schema_version": 1,
                "fields": [{"name": "decision", "type": {"type": "enum", "name": "Decision", "symbols": ["APPROVE", "REJECT"]}}]}"#,
        ),
        (
            "approvals/commands/Decide.v2.avsc",
            r#"{"type": "record", "name": "Decide", "namespace": "dev.keel.synthetic.commands",
                "keel.schema_version": 2,
                "fields": [
                  {"name": "decision", "type": {"type": "enum", "name": "Decision", "symbols": ["APPROVE", "REJECT"]}},
                  {"name": "note", "type": ["null", "string"], "default": null},
                  {"name": "limit_cents", "type": "long"},
                  {"name": "level", "type": "int", "default": 1},
                  {"name": "approvers", "type": {"type": "array", "items": "string"}}
                ]}"#,
        ),
        (
            "approvals/events/Decided.v1.avsc",
            r#"{"type": "record", "name": "Decided", "namespace": "dev.keel.synthetic.events",
                "fields": [{"name": "decision", "type": "string"}]}"#,
        ),
        ("approvals/README.md", "not a schema"),
    ])
}

#[derive(Debug, PartialEq, serde::Deserialize)]
enum Decision {
    #[serde(rename = "APPROVE")]
    Approve,
    #[serde(rename = "REJECT")]
    Reject,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
enum ApprovalCommand {
    Decide {
        decision: Decision,
        note: Option<String>,
        limit_cents: i64,
        level: i32,
        approvers: Vec<String>,
    },
}

#[test]
fn a_second_domain_written_here_encodes_its_newest_version_for_its_own_codec() {
    let dir = approvals();
    let schemas = CommandSchemas::load(dir.path()).expect("loads");
    assert_eq!(
        schemas.types().keys().copied().collect::<Vec<_>>(),
        ["dev.keel.synthetic.commands"]
    );
    let handler = schemas.wire("dev.keel.synthetic.commands").expect("parses");
    let cases = [
        (
            json!({"decision": "REJECT", "note": "over budget", "limit_cents": 50_000, "level": 3, "approvers": ["sam"]}),
            ApprovalCommand::Decide {
                decision: Decision::Reject,
                note: Some("over budget".into()),
                limit_cents: 50_000,
                level: 3,
                approvers: vec!["sam".into()],
            },
        ),
        (
            json!({"decision": "APPROVE", "note": null, "limit_cents": 0, "approvers": []}),
            ApprovalCommand::Decide {
                decision: Decision::Approve,
                note: None,
                limit_cents: 0,
                level: 1,
                approvers: vec![],
            },
        ),
    ];
    for (fields, expected) in cases {
        let bytes = schemas.encode(header(), "Decide", None, &fields).expect("encodes");
        let (envelope, command) = handler
            .decode_command::<ApprovalCommand>(&bytes)
            .unwrap_or_else(|error| panic!("{}", error.error));
        assert_eq!(command, expected);
        assert_eq!(envelope.payload.schema_version, 2);
    }
}

#[test]
fn a_payload_that_does_not_fit_is_refused_naming_the_field() {
    let support = CommandSchemas::load(&repository_schemas().join("customer-support")).expect("loads");
    let refund = |fields: Json| {
        support
            .encode(header(), "IssueRefund", None, &fields)
            .expect_err("does not fit")
    };
    let dir = approvals();
    let approvals = CommandSchemas::load(dir.path()).expect("loads");
    let decide = |fields: Json| {
        approvals
            .encode(header(), "Decide", None, &fields)
            .expect_err("does not fit")
    };
    let cases = [
        (
            refund(json!({"refund_id": "r-1", "amount_cents": "abc", "reason": "late"})),
            r#"amount_cents: expected a long, got "abc""#,
        ),
        (
            refund(json!({"amount_cents": 900, "reason": "late"})),
            "missing field refund_id",
        ),
        (
            refund(json!({"refund_id": "r-1", "amount_cents": 900, "reason": "late", "foo": 1})),
            "unknown field foo",
        ),
        (
            refund(json!(["r-1", 900, "late"])),
            "the payload: expected an object (record IssueRefund)",
        ),
        (
            decide(json!({"decision": "APPROVE", "limit_cents": 1, "level": 3_000_000_000_i64, "approvers": []})),
            "level: expected an int from -2147483648 to 2147483647, got 3000000000",
        ),
        (
            decide(json!({"decision": "MAYBE", "limit_cents": 1, "approvers": []})),
            r#"decision: expected one of APPROVE, REJECT, got "MAYBE""#,
        ),
    ];
    for (error, expected) in cases {
        let message = message(&error);
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("--payload does not fit"), "{message}");
    }
}

#[test]
fn an_unknown_type_is_refused_listing_the_known_types() {
    let dir = approvals();
    let error = CommandSchemas::load(dir.path())
        .expect("loads")
        .encode(header(), "Approve", None, &json!({}))
        .expect_err("unknown");
    let message = message(&error);
    assert!(
        message.contains("unknown command type Approve") && message.contains("Decide (dev.keel.synthetic.commands)"),
        "{message}"
    );
}

#[test]
fn a_type_two_namespaces_define_needs_the_namespace() {
    let approve = |namespace: &str, field: &str| {
        format!(
            r#"{{"type": "record", "name": "Approve", "namespace": "{namespace}",
                "fields": [{{"name": "{field}", "type": "string"}}]}}"#
        )
    };
    let (loans, leave) = (
        approve("dev.keel.loans.commands", "loan_id"),
        approve("dev.keel.leave.commands", "leave_id"),
    );
    let dir = directory(&[("loans/Approve.avsc", &loans), ("leave/Approve.avsc", &leave)]);
    let schemas = CommandSchemas::load(dir.path()).expect("loads");
    let fields = json!({"loan_id": "l-1"});

    let error = schemas
        .encode(header(), "Approve", None, &fields)
        .expect_err("ambiguous");
    let message = message(&error);
    assert!(
        message.contains("dev.keel.leave.commands, dev.keel.loans.commands") && message.contains("--namespace"),
        "{message}"
    );

    let bytes = schemas
        .encode(header(), "Approve", Some("dev.keel.loans.commands"), &fields)
        .expect("encodes");
    let (envelope, command) = schemas
        .wire("dev.keel.loans.commands")
        .expect("parses")
        .decode_command::<Json>(&bytes)
        .unwrap_or_else(|error| panic!("{}", error.error));
    assert_eq!(envelope.payload.schema_name, "dev.keel.loans.commands.Approve");
    assert_eq!(command, json!({"Approve": {"loan_id": "l-1"}}));
}

#[test]
fn a_name_defined_twice_at_one_version_differently_is_refused() {
    let first = r#"{"type": "record", "name": "Ping", "namespace": "dev.keel.x.commands", "fields": []}"#;
    let second = r#"{"type": "record", "name": "dev.keel.x.commands.Ping",
                     "fields": [{"name": "n", "type": "long"}]}"#;
    let dir = directory(&[("a/Ping.avsc", first), ("b/Ping.avsc", second), ("c/Ping.avsc", first)]);
    let error = CommandSchemas::load(dir.path()).expect_err("conflicting definitions");
    assert!(
        message(&error).contains("both define dev.keel.x.commands.Ping version 1"),
        "{error:#}"
    );
}

#[test]
fn a_directory_without_command_schemas_is_refused() {
    let dir = directory(&[(
        "events/Done.avsc",
        r#"{"type": "record", "name": "Done", "namespace": "dev.keel.x.events", "fields": []}"#,
    )]);
    let error = CommandSchemas::load(dir.path()).expect_err("no commands");
    assert!(message(&error).contains("no command schemas under"), "{error:#}");
}

#[test]
fn keels_admin_commands_are_not_sent_as_domain_commands() {
    let schemas = CommandSchemas::load(&repository_schemas()).expect("loads");
    let error = schemas
        .encode(header(), "EraseSubject", None, &json!({"subject_id": "c-1"}))
        .expect_err("an admin command is keel admin's");
    assert!(
        message(&error).contains("unknown command type EraseSubject"),
        "{}",
        message(&error)
    );
}
