//! Typed bodies: [`Codec`] turns a value into the stored bytes and back, and
//! [`Body`] is what `complete` and `fail` accept — raw bytes or a value.
//! With the `serde` feature, `Json` stores any `Serialize` value as JSON and
//! replays it as any `Deserialize` type; the record keeps the format
//! ([`BodyFormat`]) so that tools show a JSON body as JSON.
//!
//! The JSON encoding is `serde_json`'s compact form. Replays decode what was
//! stored, so a type that changes shape between releases of *your* service
//! must still read the bodies its older release wrote within the retention.

use std::borrow::Cow;

use crate::core::BodyFormat;
use crate::error::{Error, Result};

/// A value stored as a key's body and decoded from its replay: the result
/// type of [`Store::run_once`](crate::Store::run_once) and of
/// [`Replay::decode`](crate::Replay::decode).
///
/// Implemented for `Vec<u8>` and `String` (plain bytes), `()` (an empty
/// body) and, with the `serde` feature, `Json<T>`. Encoding and decoding
/// are pure: they never block; their errors are [`Error::Codec`].
pub trait Codec: Sized {
    /// How the bytes are recorded (shown by `idemkv get`).
    const FORMAT: BodyFormat;
    /// The bytes to store. Fails with [`Error::Codec`] if the value cannot be
    /// encoded; nothing is stored then.
    fn encode(&self) -> Result<Vec<u8>>;
    /// The value from stored bytes. Fails with [`Error::Codec`] if they are
    /// not a valid encoding of `Self`.
    fn decode(bytes: &[u8]) -> Result<Self>;
}

impl Codec for Vec<u8> {
    const FORMAT: BodyFormat = BodyFormat::Bytes;
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(self.clone())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
}

impl Codec for String {
    const FORMAT: BodyFormat = BodyFormat::Bytes;
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(self.as_bytes().to_vec())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::Codec { reason: format!("the stored body is not UTF-8: {e}") })
    }
}

impl Codec for () {
    const FORMAT: BodyFormat = BodyFormat::Bytes;
    fn encode(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(Error::Codec {
                reason: format!("expected an empty body, found {} bytes", bytes.len()),
            })
        }
    }
}

/// What `complete` and `fail` store: bytes as they are (`&[u8]`, `&[u8; N]`,
/// `&str`, `Vec<u8>`, `String`), any `&C` where `C: Codec` (`&Vec<u8>`,
/// `&String`, …) or, with the `serde` feature, `Json(value)` for any
/// `Serialize` value (`Json(&value)` to avoid a move). Never blocks.
pub trait Body {
    /// The bytes (borrowed when possible) and their format. Fails with
    /// [`Error::Codec`] if the value cannot be encoded.
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)>;
}

impl Body for &[u8] {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Borrowed(self), BodyFormat::Bytes))
    }
}

impl<const N: usize> Body for &[u8; N] {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Borrowed(&self[..]), BodyFormat::Bytes))
    }
}

impl Body for &str {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Borrowed(self.as_bytes()), BodyFormat::Bytes))
    }
}

impl Body for Vec<u8> {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Borrowed(self), BodyFormat::Bytes))
    }
}

impl Body for String {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Borrowed(self.as_bytes()), BodyFormat::Bytes))
    }
}

impl<C: Codec> Body for &C {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Owned(self.encode()?), C::FORMAT))
    }
}

/// A value stored as JSON (the `serde` feature): complete with
/// `Json(&value)`, replay with [`Replay::json`](crate::Replay::json), or use
/// `Json<T>` as the result type of [`Store::run_once`](crate::Store::run_once).
/// Encoding fails with [`Error::Codec`] for a value `serde_json` refuses
/// (say, a map with non-string keys), decoding for a body that is not a `T`
/// in JSON; nothing is stored then. Never blocks.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Json<T>(pub T);

#[cfg(feature = "serde")]
impl<T: serde::Serialize> Body for Json<T> {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Owned(to_json(&self.0)?), BodyFormat::Json))
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec for Json<T> {
    const FORMAT: BodyFormat = BodyFormat::Json;
    fn encode(&self) -> Result<Vec<u8>> {
        to_json(&self.0)
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        from_json(bytes).map(Json)
    }
}

#[cfg(feature = "serde")]
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Codec { reason: format!("JSON encoding: {e}") })
}

#[cfg(feature = "serde")]
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Codec { reason: format!("the stored body is not this JSON type: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<B: Body>(b: B) -> (Vec<u8>, BodyFormat) {
        let (bytes, f) = b.to_body().unwrap();
        (bytes.into_owned(), f)
    }

    #[test]
    fn raw_bodies_are_bytes() {
        let v = b"ab".to_vec();
        let s = String::from("ab");
        for (got, _) in [
            body(&b"ab"[..]),
            body(b"ab"),
            body("ab"),
            body(v.clone()),
            body(&v),
            body(s.clone()),
            body(&s),
        ] {
            assert_eq!(got, b"ab");
        }
        assert_eq!(body(&()).0, b"");
        assert!(<()>::decode(b"x").is_err());
        assert!(String::decode(&[0xff]).is_err());
        assert_eq!(String::decode(b"ab").unwrap(), "ab");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_round_trips_and_refuses_other_shapes() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Receipt {
            id: u32,
            note: String,
        }
        let r = Receipt { id: 7, note: "é\"\n".into() };
        let (bytes, f) = body(Json(&r));
        assert_eq!(f, BodyFormat::Json);
        assert_eq!(Json::<Receipt>::decode(&bytes).unwrap().0, r);
        assert!(matches!(Json::<u32>::decode(&bytes), Err(Error::Codec { .. })));
        assert!(matches!(Json::<Receipt>::decode(b"{"), Err(Error::Codec { .. })));
        // A map with non-string keys cannot be JSON: an error, not a panic.
        let m: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(matches!(Json(&m).to_body(), Err(Error::Codec { .. })));
    }
}
