//! Where a request's idempotency key comes from ([`KeySource`]), how it is
//! checked, and the composite store key built from it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderName;
use http::request::Parts;

use crate::key::Key;

/// The longest key accepted by default, in bytes (Stripe's limit; the
/// IETF draft sets none). Configurable up to [`MAX_KEY_LEN`].
pub const DEFAULT_MAX_KEY_LEN: usize = 255;
/// The longest key [`IdempotencyLayer::max_key_len`](super::IdempotencyLayer::max_key_len)
/// accepts: the composite store key (identity, method, route, key) must fit
/// an id of 1,024 bytes.
pub const MAX_KEY_LEN: usize = 512;

/// A function that finds the key in a request: `Ok(None)` when the request
/// has none, `Err(reason)` when it has a malformed one.
pub type KeyFn = dyn Fn(&Parts, &Bytes) -> Result<Option<String>, String> + Send + Sync;

/// Where the layer finds a request's idempotency key.
///
/// Building one never blocks or fails; reading the key from a request is
/// pure, and a malformed key is answered 400 (`idempotency_key_invalid`).
#[derive(Clone)]
pub struct KeySource(Source);

#[derive(Clone)]
enum Source {
    /// `Idempotency-Key`: an sf-string, or (unless strict) a bare value.
    IdempotencyKey { strict: bool },
    /// Standard Webhooks' `webhook-id` (or Svix's `svix-id`).
    WebhookId,
    /// A header's value as it is (visible ASCII).
    Header(HeaderName),
    /// The user's function.
    Custom(Arc<KeyFn>),
}

impl KeySource {
    /// The `Idempotency-Key` header (draft-ietf-httpapi-idempotency-key-header):
    /// one field line holding an RFC 8941 string (`"8e03978e-…"`), or — as
    /// Stripe's clients send it — the bare value (`8e03978e-…`: visible
    /// ASCII without `"`, `\`, `,` or `;`). Parameters after a string are
    /// ignored. Repeated lines, lists, other item types, empty strings and
    /// keys over the length limit are malformed. The default source.
    pub fn idempotency_key() -> KeySource {
        KeySource(Source::IdempotencyKey { strict: false })
    }

    /// The `Idempotency-Key` header, as the IETF draft words it: an RFC 8941
    /// string only; a bare value is malformed.
    pub fn idempotency_key_strict() -> KeySource {
        KeySource(Source::IdempotencyKey { strict: true })
    }

    /// Standard Webhooks' `webhook-id` header (the message id, stable
    /// across the sender's retries), or `svix-id` when it is absent.
    pub fn webhook_id() -> KeySource {
        KeySource(Source::WebhookId)
    }

    /// Any header, its value taken as it is: one field line of visible
    /// ASCII.
    pub fn header(name: HeaderName) -> KeySource {
        KeySource(Source::Header(name))
    }

    /// A function of the request head and its buffered body — say, the
    /// event id inside a Stripe event's JSON. It returns `Ok(None)` when
    /// the request carries no key and `Err(reason)` when its key is
    /// malformed (the reason is sent in the 400 answer).
    pub fn from_request<F>(f: F) -> KeySource
    where
        F: Fn(&Parts, &Bytes) -> Result<Option<String>, String> + Send + Sync + 'static,
    {
        KeySource(Source::Custom(Arc::new(f)))
    }

    /// A string or integer field of the JSON body, by JSON pointer (RFC
    /// 6901): `KeySource::json_field("/id")` for Stripe's event id. A body
    /// that is not JSON is malformed; a missing field is a missing key.
    pub fn json_field(pointer: impl Into<String>) -> KeySource {
        let pointer = pointer.into();
        KeySource::from_request(move |_, body| {
            let doc: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| format!("the body is not JSON ({e}), so it has no {pointer}"))?;
            match doc.pointer(&pointer) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(format!("{pointer} is not a string or a number")),
            }
        })
    }

    /// The key of a request: `Ok(None)` when it has none, `Err(reason)`
    /// when it is malformed or longer than `max_len` bytes.
    pub(crate) fn extract(
        &self,
        parts: &Parts,
        body: &Bytes,
        max_len: usize,
    ) -> Result<Option<String>, String> {
        let key = match &self.0 {
            Source::IdempotencyKey { strict } => {
                match one_line(parts, &http::HeaderName::from_static("idempotency-key"))? {
                    None => None,
                    Some(raw) => Some(parse_idempotency_key(raw, *strict)?),
                }
            }
            Source::WebhookId => {
                let id = one_line(parts, &HeaderName::from_static("webhook-id"))?;
                let id = match id {
                    Some(id) => Some(id),
                    None => one_line(parts, &HeaderName::from_static("svix-id"))?,
                };
                id.map(bare).transpose()?
            }
            Source::Header(name) => one_line(parts, name)?.map(bare).transpose()?,
            Source::Custom(f) => f(parts, body)?,
        };
        match key {
            Some(k) if k.is_empty() => Err("the key is empty".into()),
            Some(k) if k.len() > max_len => {
                Err(format!("the key is {} bytes; the limit is {max_len}", k.len()))
            }
            other => Ok(other),
        }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::IdempotencyKey { strict } => {
                write!(f, "KeySource::IdempotencyKey {{ strict: {strict} }}")
            }
            Source::WebhookId => f.write_str("KeySource::WebhookId"),
            Source::Header(name) => write!(f, "KeySource::Header({name})"),
            Source::Custom(_) => f.write_str("KeySource::Custom(..)"),
        }
    }
}

/// The header's single field line, or `None`; repeated lines are malformed.
fn one_line<'a>(parts: &'a Parts, name: &HeaderName) -> Result<Option<&'a [u8]>, String> {
    let mut values = parts.headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("{name} is sent on more than one field line"));
    }
    Ok(first.map(|v| v.as_bytes()))
}

/// A bare value: visible ASCII, no quotes, backslashes, commas or semicolons.
fn bare(raw: &[u8]) -> Result<String, String> {
    match raw.iter().find(|&&b| !(0x21..=0x7e).contains(&b) || b"\"\\,;".contains(&b)) {
        Some(b) => Err(format!("the key holds the byte {b:#04x}, which a bare key may not")),
        None => Ok(String::from_utf8_lossy(raw).into_owned()),
    }
}

fn parse_idempotency_key(raw: &[u8], strict: bool) -> Result<String, String> {
    let trimmed = raw.trim_ascii();
    if trimmed.first() == Some(&b'"') || strict {
        let item: sfv::Item = sfv::Parser::new(raw)
            .parse()
            .map_err(|e| format!("Idempotency-Key is not an RFC 8941 string: {e}"))?;
        match item.bare_item {
            sfv::BareItem::String(s) => Ok(s.as_str().to_owned()),
            _ => Err("Idempotency-Key must be an RFC 8941 string, such as \"8e03978e\"".into()),
        }
    } else {
        bare(trimmed)
    }
}

/// The store key of a request: the key scoped by the caller's identity (if
/// any), the method and the route, so that two clients' keys, or one
/// client's keys on two endpoints, never meet. Fails with
/// [`Error::InvalidKey`](crate::Error::InvalidKey) if the parts do not fit
/// a key id.
pub(crate) fn store_key(
    namespace: &str,
    identity: Option<&str>,
    method: &http::Method,
    route: &str,
    key: &str,
) -> crate::Result<Key> {
    let endpoint = format!("{method} {route}");
    match identity {
        Some(who) => Key::from_parts(namespace, &[who, &endpoint, key]),
        None => Key::from_parts(namespace, &[endpoint.as_str(), key]),
    }
}

/// The route of a request: axum's matched path (`/orders/{id}`) with the
/// `axum` feature when the router set one, else the request's path.
pub(crate) fn route_of(parts: &Parts) -> &str {
    #[cfg(feature = "axum")]
    if let Some(matched) = parts.extensions.get::<axum::extract::MatchedPath>() {
        return matched.as_str();
    }
    parts.uri.path()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(headers: &[(&str, &[u8])]) -> Parts {
        let mut b = Request::post("/charges");
        for (n, v) in headers {
            b = b.header(*n, http::HeaderValue::from_bytes(v).unwrap());
        }
        b.body(()).unwrap().into_parts().0
    }

    fn key(src: &KeySource, headers: &[(&str, &[u8])]) -> Result<Option<String>, String> {
        src.extract(&parts(headers), &Bytes::new(), DEFAULT_MAX_KEY_LEN)
    }

    #[test]
    fn idempotency_key_forms() {
        let lenient = KeySource::idempotency_key();
        let strict = KeySource::idempotency_key_strict();
        let ok = |s: &KeySource, v: &[u8]| key(s, &[("idempotency-key", v)]);
        for (v, want) in [
            (&b"\"8e03978e-40d5\""[..], "8e03978e-40d5"),
            (b"\"a b\\\"c\\\\\"", "a b\"c\\"),
            (b"  \"x\";p=1", "x"),
        ] {
            assert_eq!(ok(&lenient, v).unwrap().as_deref(), Some(want), "{v:?}");
            assert_eq!(ok(&strict, v).unwrap().as_deref(), Some(want), "{v:?}");
        }
        assert_eq!(ok(&lenient, b"8e03978e-40d5").unwrap().as_deref(), Some("8e03978e-40d5"));
        for v in [&b"8e03978e-40d5"[..], b"abc", b"1", b"?1", b":YWI=:"] {
            assert!(ok(&strict, v).is_err(), "{v:?}");
        }
        for v in [
            &b"\"\""[..],
            b"\"a\", \"b\"",
            b"\"a",
            b"\"\xe9\"",
            b"a,b",
            b"a;b",
            b"a b",
            b"\"tab\there\"",
            b"",
        ] {
            assert!(ok(&lenient, v).is_err(), "{v:?}");
        }
        assert_eq!(key(&lenient, &[]).unwrap(), None);
        let twice = [("idempotency-key", &b"\"a\""[..]), ("idempotency-key", b"\"a\"")];
        assert!(key(&lenient, &twice).unwrap_err().contains("more than one"));
    }

    #[test]
    fn length_limit_applies_to_every_source() {
        for len in [1usize, 254, 255, 256, 1_000] {
            let v = "k".repeat(len);
            let got = key(&KeySource::idempotency_key(), &[("idempotency-key", v.as_bytes())]);
            assert_eq!(got.is_ok(), len <= DEFAULT_MAX_KEY_LEN, "{len}");
            let got = key(&KeySource::webhook_id(), &[("webhook-id", v.as_bytes())]);
            assert_eq!(got.is_ok(), len <= DEFAULT_MAX_KEY_LEN, "{len}");
        }
    }

    #[test]
    fn webhook_id_falls_back_to_svix_id() {
        let src = KeySource::webhook_id();
        assert_eq!(key(&src, &[("webhook-id", b"msg_1")]).unwrap().as_deref(), Some("msg_1"));
        assert_eq!(key(&src, &[("svix-id", b"msg_2")]).unwrap().as_deref(), Some("msg_2"));
        assert_eq!(key(&src, &[]).unwrap(), None);
        assert!(key(&src, &[("webhook-id", b"m sg")]).is_err());
    }

    #[test]
    fn json_field_reads_strings_and_numbers() {
        let src = KeySource::json_field("/id");
        let p = parts(&[]);
        let get = |body: &'static [u8]| src.extract(&p, &Bytes::from_static(body), 255);
        assert_eq!(get(br#"{"id":"evt_1"}"#).unwrap().as_deref(), Some("evt_1"));
        assert_eq!(get(br#"{"id":42}"#).unwrap().as_deref(), Some("42"));
        assert_eq!(get(br#"{"other":1}"#).unwrap(), None);
        assert!(get(br#"{"id":[1]}"#).is_err());
        assert!(get(b"not json").is_err());
        assert!(get(br#"{"id":""}"#).is_err());
    }

    #[test]
    fn store_keys_never_meet_across_identities_methods_and_routes() {
        let m = http::Method::POST;
        let a = store_key("h", None, &m, "/a", "k").unwrap();
        let b = store_key("h", Some("alice"), &m, "/a", "k").unwrap();
        let c = store_key("h", Some("bob"), &m, "/a", "k").unwrap();
        let d = store_key("h", Some("alice"), &http::Method::PATCH, "/a", "k").unwrap();
        let e = store_key("h", Some("alice"), &m, "/b", "k").unwrap();
        // A slash inside a part is escaped: no crafted identity can forge
        // another caller's key.
        let f = store_key("h", Some("alice/POST /a"), &m, "/a", "k").unwrap();
        let all = [a, b, c, d, e, f];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
