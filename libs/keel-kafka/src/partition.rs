//! Record keys and the partitioner Java clients use.
//!
//! A record about a stream is keyed by the UTF-8 bytes of `tenant/stream` and goes to
//! partition `(murmur2(key) & 0x7fffffff) % partitions`, exactly as Kafka's Java
//! `DefaultPartitioner`/`BuiltInPartitioner` place keyed records. librdkafka clients get the
//! same placement with `partitioner=murmur2_random`. Tenant ids cannot contain `/`, so the
//! key is unambiguous.

/// The record key of stream `stream` of tenant `tenant`.
pub fn stream_key(tenant: &str, stream: &str) -> String {
    format!("{tenant}/{stream}")
}

/// The partition a keyed record belongs to among `partitions`, as Java clients compute it.
///
/// # Panics
/// If `partitions` is not positive: a topic always has at least one partition.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's murmur2 (Java `Utils.murmur2`): 32-bit MurmurHash2 with seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java computes on int with wrapping; the length enters as an int too.
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() == 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed by Kafka 4.1's own `org.apache.kafka.common.utils.Utils.murmur2` and
    /// `toPositive(h) % n` (see the note on this module's issue for the program).
    const JAVA_VECTORS: &[(&str, i32, i32, i32)] = &[
        ("", 275_646_681, 3, 9),
        ("a", -1_563_381_124, 4, 4),
        ("ab", 316_155_434, 2, 2),
        ("abc", 479_470_107, 3, 3),
        ("abcd", -1_323_649_548, 2, 8),
        ("acme/c-1", 1_251_621_352, 4, 4),
        ("acme/customer-0042", 1_902_155_912, 2, 8),
        ("globex/c-2", -1_926_449_646, 2, 2),
        ("tenant-with-long-name/stream-ünïcode-✓", 571_705_402, 4, 10),
        ("21", -973_932_308, 0, 0),
    ];

    #[test]
    fn murmur2_and_partitions_match_the_java_client() {
        for &(key, hash, of_six, of_twelve) in JAVA_VECTORS {
            assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
            assert_eq!(partition_for(key.as_bytes(), 6), of_six, "partition of {key:?} among 6");
            assert_eq!(
                partition_for(key.as_bytes(), 12),
                of_twelve,
                "partition of {key:?} among 12"
            );
        }
    }

    #[test]
    fn stream_keys_join_tenant_and_stream() {
        assert_eq!(stream_key("acme", "c-1"), "acme/c-1");
    }
}
