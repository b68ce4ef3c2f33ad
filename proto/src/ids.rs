//! Identifiers. Entity ids are created where the entity is created, offline included, so
//! they must never collide between devices: UUIDv7 built from a timestamp and randomness
//! the caller supplies (proto reads no clock and owns no RNG).

use serde::{Deserialize, Serialize};

/// A device enrolled with the server. Assigned by the server at enrollment, so a small
/// integer is enough and keeps every version stamp on the wire short.
/// Device 0 is the server itself (console edits, conflict records, generated orders).
pub type DeviceId = u32;

/// The server's own device id.
pub const SERVER_DEVICE: DeviceId = 0;

const ID_LEN_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EntityId(pub String);

impl EntityId {
    /// A UUIDv7: 48 bits of Unix milliseconds, then version, variant and 74 random bits.
    pub fn generate(now_ms: u64, random: [u8; 10]) -> EntityId {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        b[6] = 0x70 | (b[6] & 0x0f);
        b[8] = 0x80 | (b[8] & 0x3f);
        let h = hex::encode(b);
        EntityId(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    /// Ids come from clients, so they are restricted to a short, path- and SQL-harmless
    /// alphabet before anything else looks at them.
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= ID_LEN_MAX
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EntityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for EntityId {
    fn from(s: &str) -> Self {
        EntityId(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_layout_and_order() {
        let a = EntityId::generate(1_700_000_000_000, [0xff; 10]);
        let b = EntityId::generate(1_700_000_000_001, [0x00; 10]);
        assert_eq!(a.0.len(), 36);
        assert_eq!(&a.0[14..15], "7");
        assert!(EntityId::is_valid(&a.0));
        assert!(a < b, "later ids sort later");
    }

    #[test]
    fn rejects_hostile_ids() {
        for bad in ["", "../x", "a/b", "a b", "x\0", &"a".repeat(65)] {
            assert!(!EntityId::is_valid(bad), "{bad:?}");
        }
    }
}
