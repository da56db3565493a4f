//! What of a request its fingerprint covers ([`FingerprintSpec`]): a key
//! reused with another request is answered 422.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use sha2::{Digest, Sha256};

use crate::fingerprint::Fingerprint;

/// A function computing a request's fingerprint from its head and body.
pub type FingerprintFn = dyn Fn(&Parts, &[u8]) -> Option<Fingerprint> + Send + Sync;

/// What a request's fingerprint covers. Computing it is pure CPU (one
/// SHA-256 of what it covers) and never fails.
#[derive(Clone)]
pub struct FingerprintSpec(Spec);

#[derive(Clone)]
enum Spec {
    Request,
    Body,
    None,
    JsonFields(Arc<[String]>),
    Custom(Arc<FingerprintFn>),
}

impl Default for FingerprintSpec {
    fn default() -> Self {
        FingerprintSpec::request()
    }
}

impl FingerprintSpec {
    /// The method, the path with its query, and the body (the default).
    pub fn request() -> FingerprintSpec {
        FingerprintSpec(Spec::Request)
    }

    /// The body alone.
    pub fn body() -> FingerprintSpec {
        FingerprintSpec(Spec::Body)
    }

    /// Nothing: any request with the key is a duplicate.
    pub fn none() -> FingerprintSpec {
        FingerprintSpec(Spec::None)
    }

    /// A subset of a JSON body: the values at these JSON pointers (RFC
    /// 6901), so that fields a sender changes between retries (a delivery
    /// attempt number, a timestamp) do not count. A missing field counts as
    /// `null`; a body that is not JSON is fingerprinted whole.
    pub fn json_fields<I, S>(pointers: I) -> FingerprintSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FingerprintSpec(Spec::JsonFields(pointers.into_iter().map(Into::into).collect()))
    }

    /// Your own function of the request head and body; `None` for no
    /// fingerprint.
    pub fn custom<F>(f: F) -> FingerprintSpec
    where
        F: Fn(&Parts, &[u8]) -> Option<Fingerprint> + Send + Sync + 'static,
    {
        FingerprintSpec(Spec::Custom(Arc::new(f)))
    }

    /// The fingerprint of a request.
    pub(crate) fn of(&self, parts: &Parts, body: &[u8]) -> Option<Fingerprint> {
        match &self.0 {
            Spec::None => None,
            Spec::Body => Some(digest(&[body])),
            Spec::Request => {
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                // Lengths first: no two (method, target, body) triples hash
                // the same bytes.
                let lens = [parts.method.as_str().len() as u64, target.len() as u64];
                Some(digest(&[
                    &lens[0].to_le_bytes(),
                    &lens[1].to_le_bytes(),
                    parts.method.as_str().as_bytes(),
                    target.as_bytes(),
                    body,
                ]))
            }
            Spec::JsonFields(pointers) => match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(doc) => {
                    let picked: Vec<&serde_json::Value> = pointers
                        .iter()
                        .map(|p| doc.pointer(p).unwrap_or(&serde_json::Value::Null))
                        .collect();
                    // serde_json's maps are sorted: the encoding is canonical.
                    let canonical = serde_json::to_vec(&picked).unwrap_or_default();
                    Some(digest(&[b"json-fields\0", &canonical]))
                }
                Err(_) => Some(digest(&[body])),
            },
            Spec::Custom(f) => f(parts, body),
        }
    }
}

fn digest(chunks: &[&[u8]]) -> Fingerprint {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    Fingerprint::from_bytes(out)
}

impl fmt::Debug for FingerprintSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Spec::Request => f.write_str("FingerprintSpec::Request"),
            Spec::Body => f.write_str("FingerprintSpec::Body"),
            Spec::None => f.write_str("FingerprintSpec::None"),
            Spec::JsonFields(p) => write!(f, "FingerprintSpec::JsonFields({p:?})"),
            Spec::Custom(_) => f.write_str("FingerprintSpec::Custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str) -> Parts {
        http::Request::builder().method(method).uri(uri).body(()).unwrap().into_parts().0
    }

    #[test]
    fn request_spec_covers_method_target_and_body() {
        let s = FingerprintSpec::request();
        let base = s.of(&parts("POST", "/a?x=1"), b"b");
        assert_eq!(base, s.of(&parts("POST", "/a?x=1"), b"b"));
        for other in [
            s.of(&parts("PUT", "/a?x=1"), b"b"),
            s.of(&parts("POST", "/a?x=2"), b"b"),
            s.of(&parts("POST", "/a"), b"?x=1b"),
            s.of(&parts("POST", "/a?x=1"), b"c"),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(FingerprintSpec::none().of(&parts("POST", "/"), b"x"), None);
        let body = FingerprintSpec::body();
        assert_eq!(body.of(&parts("POST", "/a"), b"x"), body.of(&parts("PUT", "/b"), b"x"));
    }

    #[test]
    fn json_fields_ignore_other_fields_and_key_order() {
        let s = FingerprintSpec::json_fields(["/amount", "/currency"]);
        let p = parts("POST", "/");
        let a = s.of(&p, br#"{"amount":5,"currency":"eur","attempt":1}"#);
        assert_eq!(a, s.of(&p, br#"{"attempt":2,"currency":"eur","amount":5}"#));
        assert_ne!(a, s.of(&p, br#"{"amount":6,"currency":"eur"}"#));
        assert_ne!(a, s.of(&p, br#"{"currency":"eur"}"#));
        assert_ne!(s.of(&p, b"x"), s.of(&p, b"y"));
    }
}
