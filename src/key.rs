//! Keys: a namespace (the event source, e.g. `"stripe"`) plus the id bytes.
//!
//! Keys are stored verbatim — never only as a hash — so two different keys
//! can never collide. The storage form is `ns_len: u8 | namespace | id`
//! (see docs/FORMAT.md, "Key").

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;
/// Longest id, in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// An idempotency key: namespace + id. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    raw: Arc<[u8]>,
}

impl Key {
    /// A key in `namespace` with the given id bytes.
    ///
    /// The namespace must be 1 to 64 bytes of UTF-8; the id 1 to 1024 bytes
    /// of anything (it need not be UTF-8).
    ///
    /// ```
    /// let key = idemkv::Key::new("stripe", "evt_1NqZ")?;
    /// assert_eq!(key.namespace(), "stripe");
    /// assert_eq!(key.id(), b"evt_1NqZ");
    /// # Ok::<(), idemkv::Error>(())
    /// ```
    pub fn new(namespace: &str, id: impl AsRef<[u8]>) -> Result<Key> {
        let id = id.as_ref();
        validate_namespace(namespace)?;
        if id.is_empty() {
            return Err(Error::InvalidKey { reason: "the id is empty".into() });
        }
        if id.len() > MAX_ID_LEN {
            return Err(Error::InvalidKey {
                reason: format!("the id is {} bytes; the limit is {MAX_ID_LEN}", id.len()),
            });
        }
        let mut raw = Vec::with_capacity(1 + namespace.len() + id.len());
        raw.push(namespace.len() as u8);
        raw.extend_from_slice(namespace.as_bytes());
        raw.extend_from_slice(id);
        Ok(Key { raw: raw.into() })
    }

    /// A deterministic key built from parts that identify the event, such as
    /// the merchant and the sender's event id — never a timestamp.
    ///
    /// Parts are joined with `/`; a `/` or `%` inside a part is
    /// percent-escaped, so different part lists never give the same key.
    ///
    /// ```
    /// let key = idemkv::Key::from_parts("stripe", &["acct_42", "evt_1NqZ"])?;
    /// assert_eq!(key.id(), b"acct_42/evt_1NqZ");
    /// let other = idemkv::Key::from_parts("stripe", &["acct_42/evt_1NqZ"])?;
    /// assert_ne!(key, other);
    /// # Ok::<(), idemkv::Error>(())
    /// ```
    pub fn from_parts<P: AsRef<[u8]>>(namespace: &str, parts: &[P]) -> Result<Key> {
        let mut id = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                id.push(b'/');
            }
            for &b in part.as_ref() {
                match b {
                    b'/' => id.extend_from_slice(b"%2F"),
                    b'%' => id.extend_from_slice(b"%25"),
                    _ => id.push(b),
                }
            }
        }
        Key::new(namespace, id)
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        let n = self.raw[0] as usize;
        // Validated as UTF-8 at construction (and at decode, see `from_raw`).
        std::str::from_utf8(&self.raw[1..1 + n]).unwrap_or("")
    }

    /// The namespace as bytes (no UTF-8 check: it was validated at construction).
    pub(crate) fn namespace_bytes(&self) -> &[u8] {
        &self.raw[1..1 + self.raw[0] as usize]
    }

    /// The id bytes.
    pub fn id(&self) -> &[u8] {
        &self.raw[1 + self.raw[0] as usize..]
    }

    /// The storage form: `ns_len | namespace | id`.
    pub fn as_raw(&self) -> &[u8] {
        &self.raw
    }

    pub(crate) fn raw_arc(&self) -> Arc<[u8]> {
        self.raw.clone()
    }

    /// Parses the storage form back into a key, validating it.
    pub fn from_raw(raw: &[u8]) -> Result<Key> {
        let Some((&n, rest)) = raw.split_first() else {
            return Err(Error::InvalidKey { reason: "the raw key is empty".into() });
        };
        let n = n as usize;
        if rest.len() < n {
            return Err(Error::InvalidKey { reason: "the raw key is truncated".into() });
        }
        let ns = std::str::from_utf8(&rest[..n])
            .map_err(|_| Error::InvalidKey { reason: "the namespace is not UTF-8".into() })?;
        Key::new(ns, &rest[n..])
    }
}

fn validate_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() {
        return Err(Error::InvalidKey { reason: "the namespace is empty".into() });
    }
    if namespace.len() > MAX_NAMESPACE_LEN {
        return Err(Error::InvalidKey {
            reason: format!(
                "the namespace is {} bytes; the limit is {MAX_NAMESPACE_LEN}",
                namespace.len()
            ),
        });
    }
    Ok(())
}

pub(crate) fn validate_namespace_name(namespace: &str) -> Result<()> {
    validate_namespace(namespace)
}

impl fmt::Display for Key {
    /// `namespace:id`, with a non-UTF-8 id shown as `0x` + hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.namespace())?;
        match std::str::from_utf8(self.id()) {
            Ok(s) => f.write_str(s),
            Err(_) => write!(f, "0x{}", hex(self.id())),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Shows a raw storage key for error messages, whether or not it is valid.
pub(crate) fn display_raw(raw: &[u8]) -> String {
    match Key::from_raw(raw) {
        Ok(k) => k.to_string(),
        Err(_) => format!("0x{}", hex(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Key::new("", "x").is_err());
        assert!(Key::new("s", "").is_err());
        assert!(Key::new(&"n".repeat(65), "x").is_err());
        assert!(Key::new(&"n".repeat(64), "x").is_ok());
        assert!(Key::new("s", vec![7u8; 1025]).is_err());
        assert!(Key::new("s", vec![7u8; 1024]).is_ok());
    }

    #[test]
    fn raw_round_trip_and_no_collision() {
        let a = Key::new("ab", "c").unwrap();
        let b = Key::new("a", "bc").unwrap();
        assert_ne!(a.as_raw(), b.as_raw());
        assert_eq!(Key::from_raw(a.as_raw()).unwrap(), a);
        let bin = Key::new("s", [0xff, 0x00]).unwrap();
        assert_eq!(bin.to_string(), "s:0xff00");
    }

    #[test]
    fn parts_escape() {
        let k = Key::from_parts("s", &["a/b", "c%"]).unwrap();
        assert_eq!(k.id(), b"a%2Fb/c%25");
    }
}
