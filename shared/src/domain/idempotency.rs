//! Idempotent writes: a client sends an `Idempotency-Key` with a write, and every repeat of that request
//! within [`KEY_LIFETIME`] gets the first successful response back instead of a second effect.

use std::time::Duration;

/// How long a key and its response are kept; after that the same key starts a new request.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The most keys one caller may hold at a time (each kept [`KEY_LIFETIME`]), so that no caller can grow the
/// stored responses without bound: a write whose key would be one more is refused and changes nothing. Far above
/// what one shop sends in a day (about one key a second, all day); a write without a key is never limited.
pub const KEYS_PER_CALLER: u32 = 100_000;

/// A client's idempotency key: 1 to 255 visible ASCII characters (`!` to `~`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.len() > Self::MAX_CHARS {
            return Err(format!(
                "Idempotency-Key must be 1 to {} characters",
                Self::MAX_CHARS
            ));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("Idempotency-Key may contain only visible ASCII characters".to_owned());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of everything that makes a request what it is (method, route, path id, body); a key used again
/// with another fingerprint is a different request and is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

/// A key, who sent it, and the request it was sent with. Keys are per caller: the same key from two callers
/// is two requests.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The caller's identity (a digest of the token's issuer and subject), empty when the API runs without
    /// authentication.
    pub caller: String,
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
}

/// A stored response: what a repeat of the request gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub status: u16,
    /// The response's own headers (`Location`, `ETag`), in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The answer to an idempotent write: made now, or replayed from the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once {
    Fresh(Replay),
    Replayed(Replay),
}

impl Once {
    pub fn response(&self) -> &Replay {
        match self {
            Self::Fresh(replay) | Self::Replayed(replay) => replay,
        }
    }

    pub fn replayed(&self) -> bool {
        matches!(self, Self::Replayed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("order-42_!~").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("tab\there").is_err());
        assert!(IdempotencyKey::parse("clé").is_err());
        assert!(IdempotencyKey::parse("nul\0").is_err());
    }
}
