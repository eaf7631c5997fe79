//! Field values senders get wrong.

use super::*;

pub(super) const IDS: [&str; 8] = [
    "acme",
    "c-42",
    "support-bot",
    "ops+bot@example.com",
    "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
    "orders.eu:42",
    "keel.erasure:c-42",
    "keel.tenant-erasure",
];

pub(super) const ODD_TEXT: [&str; 20] = [
    "",
    "-rf",
    "..",
    "c\nforged",
    "c\0",
    "\u{1b}[31m",
    "a/b",
    "a b",
    "caf\u{e9}",
    "\u{202e}gpj.exe",
    "\u{feff}acme",
    "keel.erasure:",
    "keel.:x",
    "keel.erasure:keel.erasure:x",
    "%00",
    "%zz",
    "{\"a\":1}",
    "NaN",
    "9223372036854775808",
    "\u{1d54f}",
];

pub(super) const LONG_LENGTHS: [usize; 10] = [255, 256, 257, 288, 289, 1024, 8192, 8193, 9000, 70_000];

pub(super) const ID_BYTES: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@+=~";

/// A field value: often an id of the grammar, often not.
pub(super) fn text(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0..=2 => (*pick(rng, &IDS)).to_owned(),
        3 => (*pick(rng, &ODD_TEXT)).to_owned(),
        4 => {
            let unit = *pick(rng, &["x", "\u{e9}", "a/", "keel."]);
            unit.repeat(*pick(rng, &LONG_LENGTHS) / unit.len())
        }
        5 => format!(
            "keel.{}:{}",
            "k".repeat(rng.gen_range(0..40)),
            "s".repeat(rng.gen_range(0..300))
        ),
        6 => (0..rng.gen_range(0..300))
            .map(|_| char::from(rng.gen_range(0x20..0x7f_u8)))
            .collect(),
        7 => (0..rng.gen_range(0..64)).map(|_| rng.r#gen::<char>()).collect(),
        _ => {
            let len = rng.gen_range(1..=260);
            (0..len).map(|_| char::from(*pick(rng, ID_BYTES))).collect()
        }
    }
}

/// An id of the grammar, or (one time in four) any [`text`].
pub(super) fn id(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.75) {
        (*pick(rng, &IDS[..6])).to_owned()
    } else {
        text(rng)
    }
}

pub(super) fn odd_i64(rng: &mut StdRng) -> i64 {
    const VALUES: [i64; 12] = [
        0,
        1,
        -1,
        42,
        i64::MAX,
        i64::MIN,
        i32::MAX as i64,
        i32::MIN as i64,
        1 << 53,
        1_800_000_000_000_000,
        -1_800_000_000_000_000,
        u32::MAX as i64,
    ];
    if rng.gen_bool(0.7) {
        *pick(rng, &VALUES)
    } else {
        rng.r#gen()
    }
}

pub(super) fn odd_i32(rng: &mut StdRng) -> i32 {
    const VALUES: [i32; 7] = [1, 0, -1, 2, 99, i32::MAX, i32::MIN];
    if rng.gen_bool(0.8) {
        *pick(rng, &VALUES)
    } else {
        rng.r#gen()
    }
}

pub(super) fn odd_u64(rng: &mut StdRng) -> u64 {
    const VALUES: [u64; 7] = [0, 1, NOW, NOW + 600, NOW - 31, u64::MAX, i64::MAX as u64 + 1];
    if rng.gen_bool(0.8) {
        *pick(rng, &VALUES)
    } else {
        rng.r#gen()
    }
}

pub(super) fn uuid(rng: &mut StdRng) -> Uuid {
    match rng.gen_range(0..8) {
        0 => Uuid::nil(),
        1 => Uuid::max(),
        _ => Uuid::from_u128(rng.r#gen()),
    }
}

pub(super) fn random_bytes(rng: &mut StdRng, most: usize) -> Vec<u8> {
    let mut bytes = vec![0; rng.gen_range(0..=most)];
    rng.fill(&mut bytes[..]);
    bytes
}

pub(super) fn wire_actor(rng: &mut StdRng) -> keel_envelope::Actor {
    let kinds = [
        keel_envelope::ActorKind::Human,
        keel_envelope::ActorKind::Agent,
        keel_envelope::ActorKind::Service,
        keel_envelope::ActorKind::System,
    ];
    let delegation = match rng.gen_range(0..4) {
        0 => 0,
        1 => rng.gen_range(1..=3),
        2 => rng.gen_range(8..=10),
        _ => rng.gen_range(0..=200),
    };
    keel_envelope::Actor {
        kind: *pick(rng, &kinds),
        id: id(rng),
        delegation: (0..delegation)
            .map(|_| keel_envelope::ActorRef {
                kind: *pick(rng, &kinds),
                id: id(rng),
            })
            .collect(),
        authorization: rng.gen_bool(0.3).then(|| keel_envelope::Authorization {
            policy: text(rng),
            scope: text(rng),
        }),
    }
}
