//! Bytes shown to people: hex, and the text form of keys (`NAMESPACE:ID`
//! with `%XX` escapes), from a key's parts or from raw storage bytes that
//! may not be a key at all.
//!
//! A leaf: it depends on nothing else in the crate, so that errors,
//! fingerprints and keys can all use it without depending on each other.

use std::fmt::Write as _;

/// `bytes` in lowercase hex, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The text form of the key `namespace` + `id`, `NAMESPACE:ID`, which
/// `Key::parse` reads back (its documentation lists the escapes): in the
/// namespace `:`, `%`, control and white-space characters and a leading `-`
/// are escaped; in the id `%`, control and white-space characters and every
/// byte that is not part of valid UTF-8.
pub(crate) fn key_text(namespace: &str, id: &[u8]) -> String {
    let mut out = String::with_capacity(namespace.len() + id.len() + 9);
    for (i, c) in namespace.chars().enumerate() {
        // A leading '-' would read as an option on a command line.
        push_char(&mut out, c, c == ':' || (i == 0 && c == '-'));
    }
    out.push(':');
    for chunk in id.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut out, c, false);
        }
        for &b in chunk.invalid() {
            push_escape(&mut out, b);
        }
    }
    out
}

/// Appends `c`, percent-escaped (each of its UTF-8 bytes) if it is `%`, a
/// control or white-space character, or `also`.
fn push_char(out: &mut String, c: char, also: bool) {
    if also || c == '%' || c.is_control() || c.is_whitespace() {
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            push_escape(out, b);
        }
    } else {
        out.push(c);
    }
}

/// Appends `%XX`, `XX` the byte in upper-case hex.
fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Shows raw storage key bytes (`ns_len | namespace | id`, docs/FORMAT.md,
/// "Key") for error messages, whether or not they are a key: the key's text
/// form when they have the key's layout — a non-empty UTF-8 namespace of
/// `ns_len` bytes, then a non-empty id — and `0x` with the bytes in hex
/// otherwise. The parts' lengths are not held to the key limits.
pub(crate) fn display_raw(raw: &[u8]) -> String {
    let parts = raw.split_first().and_then(|(&n, rest)| {
        let (namespace, id) = rest.split_at_checked(usize::from(n))?;
        let namespace = std::str::from_utf8(namespace).ok()?;
        (!namespace.is_empty() && !id.is_empty()).then_some((namespace, id))
    });
    match parts {
        Some((namespace, id)) => key_text(namespace, id),
        None => format!("0x{}", hex(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }

    #[test]
    fn raw_keys_and_other_bytes() {
        assert_eq!(display_raw(b"\x06stripeevt_1"), "stripe:evt_1");
        assert_eq!(display_raw(b"\x03a:b\xff c"), "a%3Ab:%FF%20c");
        assert_eq!(display_raw(b"\x02-xy"), "%2Dx:y");
        // Not a key: empty, truncated, empty part, namespace not UTF-8.
        assert_eq!(display_raw(b""), "0x");
        assert_eq!(display_raw(b"k"), "0x6b");
        assert_eq!(display_raw(b"\x05abc"), "0x05616263");
        assert_eq!(display_raw(b"\x00id"), "0x006964");
        assert_eq!(display_raw(b"\x02ns"), "0x026e73");
        assert_eq!(display_raw(b"\x01\xffid"), "0x01ff6964");
    }
}
