//! Our own Bedrock recordIds: `R` and ten digits, 11 characters: alphanumeric ids of our own, since the real
//! limits are undocumented (docs/bedrock.md#input-records).

/// A recordId; its number is the accepted record's 1-based position in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordId {
    n: u64,
    text: [u8; 11],
}

impl RecordId {
    pub const FIRST: RecordId = RecordId::new(1);
    /// The largest number ten digits hold.
    pub const MAX: u64 = 9_999_999_999;

    pub const fn new(n: u64) -> RecordId {
        let mut text = *b"R0000000000";
        let mut i = 10;
        let mut rest = n;
        while i > 0 {
            text[i] = b'0' + (rest % 10) as u8;
            rest /= 10;
            i -= 1;
        }
        RecordId { n, text }
    }

    pub fn number(self) -> u64 {
        self.n
    }

    pub fn next(self) -> RecordId {
        RecordId::new(self.n + 1)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    pub fn as_str(&self) -> &str {
        // Built from ASCII digits and 'R' only.
        std::str::from_utf8(&self.text).unwrap_or("R0000000000")
    }

    /// Reads a recordId of ours back; anything else is `None`.
    pub fn parse(s: &str) -> Option<RecordId> {
        let digits = s.strip_prefix('R')?;
        if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(RecordId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(RecordId::FIRST.as_str(), "R0000000001");
        assert_eq!(RecordId::new(42).as_str(), "R0000000042");
        assert_eq!(RecordId::new(RecordId::MAX).as_str(), "R9999999999");
        assert_eq!(RecordId::parse("R0000000042").map(RecordId::number), Some(42));
        for bad in [
            "",
            "R",
            "R42",
            "X0000000042",
            "R00000000420",
            "R00000000a2",
            "R+000000042",
        ] {
            assert_eq!(RecordId::parse(bad), None, "{bad}");
        }
    }
}
