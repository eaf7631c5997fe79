//! Byte-level mutation.

use super::*;

/// Zigzag varints an Avro length or count can be overwritten with: lengths just under and
/// over apache-avro's 512 MiB allocation cap, i32 and i64 extremes, negative counts.
pub(super) const AVRO_LENGTHS: [i64; 14] = [
    -1,
    -2,
    1_000_000,
    100_000_000,
    524_288_000,
    536_870_912,
    536_870_913,
    1 << 30,
    i32::MAX as i64,
    1 << 32,
    1 << 53,
    i64::MAX,
    i64::MIN,
    i64::MIN + 1,
];

/// Interesting byte values.
pub(super) const INTERESTING_BYTES: [u8; 6] = [0x00, 0x7f, 0x80, 0xff, 0x01, 0xfe];

/// The single-object marker every Avro message starts with.
pub(super) const AVRO_MAGIC: [u8; 2] = [0xc3, 0x01];

/// Stacked byte-level mutations of a target's corpus.
pub(super) struct Mutator<'a> {
    pub(super) corpus: &'a [Vec<u8>],
    /// The writer schema fingerprints of the corpus's Avro messages.
    pub(super) fingerprints: Vec<[u8; 8]>,
    /// Varint encodings of [`AVRO_LENGTHS`], and two overlong varints.
    pub(super) lengths: Vec<Vec<u8>>,
}

impl<'a> Mutator<'a> {
    pub(super) fn new(corpus: &'a [Vec<u8>]) -> Self {
        let mut fingerprints: Vec<[u8; 8]> = Vec::new();
        for seed in corpus {
            if let Some(fingerprint) = seed
                .strip_prefix(&AVRO_MAGIC[..])
                .and_then(|rest| rest.get(..8))
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .filter(|fingerprint| !fingerprints.contains(fingerprint))
            {
                fingerprints.push(fingerprint);
            }
        }
        let mut lengths: Vec<Vec<u8>> = AVRO_LENGTHS.iter().map(|length| zigzag(*length)).collect();
        lengths.push(vec![0xff; 11]);
        lengths.push([[0x80; 9].as_slice(), &[0x00]].concat());
        Self {
            corpus,
            fingerprints,
            lengths,
        }
    }

    /// Applies 1 to `most` mutations to `input`.
    pub(super) fn mutate(&self, rng: &mut StdRng, input: &mut Vec<u8>, most: usize) {
        for _ in 0..rng.gen_range(1..=most) {
            self.mutate_once(rng, input);
            input.truncate(MAX_INPUT_BYTES);
        }
    }

    pub(super) fn mutate_once(&self, rng: &mut StdRng, input: &mut Vec<u8>) {
        let len = input.len();
        let at = |rng: &mut StdRng| rng.gen_range(0..len.max(1));
        match rng.gen_range(0..12) {
            0 if len > 0 => {
                let i = at(rng);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = at(rng);
                input[i] = *pick(rng, &INTERESTING_BYTES);
            }
            2 if len > 0 => {
                let i = at(rng);
                input[i] = rng.r#gen();
            }
            3 => {
                let i = rng.gen_range(0..=len);
                let inserted: Vec<u8> = if rng.gen_bool(0.5) {
                    (0..rng.gen_range(1..=32)).map(|_| rng.r#gen()).collect()
                } else {
                    vec![rng.r#gen(); rng.gen_range(1..=4096)]
                };
                input.splice(i..i, inserted);
            }
            4 if len > 0 => {
                let start = at(rng);
                let end = rng.gen_range(start..=len.min(start + 256));
                input.drain(start..end);
            }
            5 if len > 0 => {
                let start = at(rng);
                let end = rng.gen_range(start..=len.min(start + 64));
                let range = input[start..end].repeat(rng.gen_range(1..=64));
                let to = rng.gen_range(0..=len);
                input.splice(to..to, range);
            }
            6 => input.truncate(rng.gen_range(0..=len)),
            7 => {
                let other = pick(rng, self.corpus);
                let keep = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                input.truncate(keep);
                input.extend_from_slice(&other[from..]);
            }
            8 => {
                let other = pick(rng, self.corpus);
                let start = rng.gen_range(0..=other.len());
                let end = rng.gen_range(start..=other.len());
                let to = rng.gen_range(0..=len);
                input.splice(to..to, other[start..end].iter().copied());
            }
            9 => {
                let length = pick(rng, &self.lengths);
                let i = rng.gen_range(0..=len);
                if rng.gen_bool(0.5) {
                    let end = (i + length.len()).min(len);
                    input.splice(i..end, length.iter().copied());
                } else {
                    input.splice(i..i, length.iter().copied());
                }
            }
            10 if len >= 10 && input.starts_with(&AVRO_MAGIC) && !self.fingerprints.is_empty() => {
                let fingerprint = *pick(rng, &self.fingerprints);
                input[2..10].copy_from_slice(&fingerprint);
            }
            11 if len > 0 => {
                let i = at(rng);
                let delta = rng.gen_range(1..=16u8);
                input[i] = if rng.gen_bool(0.5) {
                    input[i].wrapping_add(delta)
                } else {
                    input[i].wrapping_sub(delta)
                };
            }
            _ => {
                let i = rng.gen_range(0..=len);
                input.insert(i, rng.r#gen());
            }
        }
    }
}

/// The Avro (zigzag varint) encoding of `value`.
pub(super) fn zigzag(value: i64) -> Vec<u8> {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::with_capacity(10);
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

/// A random element of a non-empty slice.
pub(super) fn pick<'s, T>(rng: &mut StdRng, items: &'s [T]) -> &'s T {
    &items[rng.gen_range(0..items.len())]
}
