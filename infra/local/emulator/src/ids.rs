//! Identifiers and deterministic pseudo-randomness (no `rand`: a seeded SplitMix64 is enough and keeps every
//! shuffle reproducible).

use xxhash_rust::xxh3::xxh3_64;

/// SplitMix64: tiny, fast, and good enough for ids and shuffles.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator whose stream depends only on `seed` and `label`.
    pub fn derived(seed: u64, label: &str) -> Self {
        Self(seed ^ xxh3_64(label.as_bytes()))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0); the modulo bias is irrelevant at these sizes.
    pub fn below(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next_u64() % bound).unwrap_or(0)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// `len` characters from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }
}

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Job ids and request ids for one emulator process.
#[derive(Debug)]
pub struct IdGenerator(SplitMix64);

impl IdGenerator {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// docs/bedrock.md#creating-a-job: exactly 12 characters from `[a-z0-9]`.
    pub fn job_id(&mut self) -> String {
        self.0.string(LOWER_ALNUM, 12)
    }

    /// A UUID-shaped request id for `x-amzn-RequestId`.
    pub fn request_id(&mut self) -> String {
        let a = self.0.next_u64();
        let b = self.0.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_have_the_service_shape() {
        let mut ids = IdGenerator::new(7);
        let a = ids.job_id();
        let b = ids.job_id();
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(a, b);
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = IdGenerator::new(1).request_id();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn shuffles_are_reproducible_permutations() {
        let mut a: Vec<u32> = (0..50).collect();
        let mut b = a.clone();
        SplitMix64::derived(42, "in.jsonl").shuffle(&mut a);
        SplitMix64::derived(42, "in.jsonl").shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
