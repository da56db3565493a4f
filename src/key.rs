//! Keys: a namespace (the event source, e.g. `"stripe"`) plus the id bytes.
//!
//! Keys are stored verbatim — never only as a hash — so two different keys
//! can never collide. The storage form is `ns_len: u8 | namespace | id`
//! (see docs/FORMAT.md, "Key").

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::text;

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;
/// Longest id, in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// An idempotency key: namespace + id. Cheap to clone.
///
/// Nothing here blocks. The constructors check the key and fail with
/// [`Error::InvalidKey`]; the accessors never fail.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    raw: Arc<[u8]>,
}

impl Key {
    /// A key in `namespace` with the given id bytes.
    ///
    /// The namespace must be 1 to 64 bytes of UTF-8; the id 1 to 1024 bytes
    /// of anything (it need not be UTF-8). Fails with [`Error::InvalidKey`]
    /// otherwise.
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
    /// Fails with [`Error::InvalidKey`] as [`Key::new`] — the escaped,
    /// joined id counts against its 1,024 bytes.
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

    /// Parses the storage form back into a key, validating it. Fails with
    /// [`Error::InvalidKey`] when it is empty, truncated, has a namespace
    /// that is not UTF-8, or fails [`Key::new`]'s checks.
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
    /// The key's text form, `NAMESPACE:ID`, which [`Key::parse`] reads back
    /// exactly: see [`Key::parse`] for the escapes. Plain keys such as
    /// `stripe:evt_1` print as they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::key_text(self.namespace(), self.id()))
    }
}

/// Decodes `%XX` escapes; any other character stands for itself.
fn unescape(part: &str, what: &str, whole: &str) -> Result<Vec<u8>> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digits = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16).ok().filter(|_| h.bytes().all(|d| d.is_ascii_hexdigit()))
            });
            let Some(b) = digits else {
                return Err(Error::InvalidKey {
                    reason: format!(
                        "{whole:?}: a '%' in the {what} must start an escape of two hex digits \
                         (%3A is ':', %25 is '%')"
                    ),
                });
            };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

impl Key {
    /// Parses the text form that [`Key`]'s `Display` prints — its exact
    /// inverse: `Key::parse(&key.to_string()) == Ok(key)` for every key.
    ///
    /// The form is `NAMESPACE:ID`, split at the first `:`. `%XX` (two hex
    /// digits, either case) stands for the byte `XX`; every other character
    /// stands for itself. `Display` escapes, in the namespace, `:`, `%`,
    /// control and white-space characters and a leading `-` (which a command
    /// line would read as an option: `-x:1` prints as `%2Dx:1`); in the id, `%`, control and
    /// white-space characters and every byte that is not part of valid
    /// UTF-8. So `stripe:evt_1` is namespace `stripe`, id `evt_1`; `a%3Ab:c:d`
    /// is namespace `a:b`, id `c:d`; `s:%FF%00` is the two-byte id
    /// `[0xff, 0]`; `s:0x41` is the four-byte id `0x41`.
    ///
    /// Fails with [`Error::InvalidKey`] when there is no `:`, a `%` does not
    /// start such an escape, the namespace is not UTF-8, or either part is
    /// empty or too long (as [`Key::new`]). Never blocks.
    ///
    /// ```
    /// use idemkv::Key;
    /// let key = Key::new("ns:with:colons", [0xff, b':', b'%'])?;
    /// assert_eq!(key.to_string(), "ns%3Awith%3Acolons:%FF:%25");
    /// assert_eq!(Key::parse(&key.to_string())?, key);
    /// assert_eq!(Key::parse("stripe:evt_1")?, Key::new("stripe", "evt_1")?);
    /// # Ok::<(), idemkv::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Key> {
        let Some((ns, id)) = text.split_once(':') else {
            return Err(Error::InvalidKey {
                reason: format!("{text:?}: expected NAMESPACE:ID, e.g. stripe:evt_1"),
            });
        };
        let ns = unescape(ns, "namespace", text)?;
        let ns = String::from_utf8(ns).map_err(|_| Error::InvalidKey {
            reason: format!("{text:?}: the namespace is not UTF-8"),
        })?;
        Key::new(&ns, unescape(id, "id", text)?)
    }
}

impl std::str::FromStr for Key {
    type Err = Error;

    /// [`Key::parse`].
    fn from_str(s: &str) -> Result<Key> {
        Key::parse(s)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
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
        assert_eq!(bin.to_string(), "s:%FF%00");
    }

    #[test]
    fn text_form() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("stripe", b"evt_1", "stripe:evt_1"),
            ("stripe", b"evt:1", "stripe:evt:1"),
            ("a:b", b"c:d", "a%3Ab:c:d"),
            ("p%", b"100%", "p%25:100%25"),
            ("s", b"0x41", "s:0x41"),
            ("s", b"%41", "s:%2541"),
            ("with space", b"a b\n", "with%20space:a%20b%0A"),
            ("s", &[0xe2, 0x82, 0xac, 0xff], "s:\u{20ac}%FF"),
        ];
        for &(ns, id, text) in cases {
            let k = Key::new(ns, id).unwrap();
            assert_eq!(k.to_string(), text);
            assert_eq!(crate::text::display_raw(k.as_raw()), text);
            assert_eq!(Key::parse(text).unwrap(), k, "{text}");
        }
        assert_eq!(Key::parse("s:%ff%00").unwrap().id(), [0xff, 0]);
        assert_eq!(Key::parse("s:a b").unwrap().id(), b"a b");
        for bad in ["nocolon", ":x", "s:", "s:%", "s:%4", "s:%zz", "s:%+1", "%FF:x"] {
            assert!(matches!(Key::parse(bad), Err(Error::InvalidKey { .. })), "{bad}");
        }
    }

    #[test]
    fn parts_escape() {
        let k = Key::from_parts("s", &["a/b", "c%"]).unwrap();
        assert_eq!(k.id(), b"a%2Fb/c%25");
    }
}
