//! The stored HTTP response: status, allow-listed headers and body, in the
//! byte layout of docs/FORMAT.md ("HTTP response envelope"), kept as a
//! record body of format [`BodyFormat::Http`].
//!
//! ```text
//! off  len  field
//!   0    1  envelope version   1
//!   1    2  status             u16 LE, 100..=999
//!   3    2  header count n     u16 LE
//!   5       n × header:        u16 LE name length, name (lowercase, a
//!                              valid field name), u16 LE value length,
//!                              value (a valid field value)
//!   …       body               the rest: the response body, byte for byte
//! ```

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::core::BodyFormat;
use crate::error::{Error, Result};
use crate::store::Body;

/// The envelope version this build writes and reads.
pub(crate) const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the first header.
const FIXED: usize = 5;

/// A response as stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
}

impl StoredResponse {
    /// Keeps the headers of `headers` named in `allow` (in the response's
    /// order, repeated fields kept), drops the rest.
    pub(crate) fn new(
        status: StatusCode,
        headers: &HeaderMap,
        allow: &[HeaderName],
        body: Bytes,
    ) -> StoredResponse {
        let kept = headers
            .iter()
            .filter(|(name, _)| allow.contains(name))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        StoredResponse { status, headers: kept, body }
    }

    /// Bytes the envelope adds to the body.
    pub(crate) fn overhead(&self) -> usize {
        FIXED + self.headers.iter().map(|(n, v)| 4 + n.as_str().len() + v.len()).sum::<usize>()
    }

    /// The envelope bytes. Fails with [`Error::Codec`] if a header name or
    /// value is longer than 65,535 bytes or there are more than 65,535
    /// headers (nothing is stored then).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let too_long = |what: &str| Error::Codec {
            reason: format!("the response's {what} does not fit the HTTP envelope (u16 length)"),
        };
        let mut out = Vec::with_capacity(self.overhead() + self.body.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&self.status.as_u16().to_le_bytes());
        let count = u16::try_from(self.headers.len()).map_err(|_| too_long("header count"))?;
        out.extend_from_slice(&count.to_le_bytes());
        for (name, value) in &self.headers {
            for field in [name.as_str().as_bytes(), value.as_bytes()] {
                let len = u16::try_from(field.len()).map_err(|_| too_long("header"))?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(field);
            }
        }
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// The response from envelope bytes. Fails with [`Error::Codec`]
    /// naming the damage for anything this build did not write: another
    /// version, a status outside 100..=999, a length past the end, an
    /// invalid header name or value.
    pub(crate) fn decode(bytes: &[u8]) -> Result<StoredResponse> {
        let bad = |reason: String| Error::Codec { reason: format!("HTTP envelope: {reason}") };
        let mut r = Reader { bytes, at: 0 };
        let version = r.take(1).ok_or_else(|| bad("empty".into()))?[0];
        if version != ENVELOPE_VERSION {
            return Err(bad(format!("version {version}; this build reads {ENVELOPE_VERSION}")));
        }
        let status = r.u16().ok_or_else(|| bad("truncated status".into()))?;
        let status = StatusCode::from_u16(status).map_err(|_| bad(format!("status {status}")))?;
        let count = r.u16().ok_or_else(|| bad("truncated header count".into()))?;
        let mut headers = Vec::with_capacity(usize::from(count).min(64));
        for i in 0..count {
            let name = r.field().ok_or_else(|| bad(format!("header {i}: truncated name")))?;
            let name = HeaderName::from_bytes(name)
                .ok()
                .filter(|n| n.as_str().as_bytes() == name)
                .ok_or_else(|| bad(format!("header {i}: invalid name")))?;
            let value = r.field().ok_or_else(|| bad(format!("header {i}: truncated value")))?;
            let value = HeaderValue::from_bytes(value)
                .map_err(|_| bad(format!("header {i} ({name}): invalid value")))?;
            headers.push((name, value));
        }
        let body = Bytes::copy_from_slice(&bytes[r.at..]);
        Ok(StoredResponse { status, headers, body })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn field(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

/// The HTTP response a finished key holds, as the layer stored it (status,
/// the allow-listed headers, body) — for tools and tests that read the
/// store directly. Fails with [`Error::Codec`] if the key's body is not an
/// HTTP envelope ([`BodyFormat::Http`]) or is damaged. Never blocks.
pub fn stored_response(replay: &crate::store::Replay) -> Result<http::Response<Bytes>> {
    if replay.format() != BodyFormat::Http {
        return Err(Error::Codec {
            reason: format!("the key holds a {:?} body, not an HTTP response", replay.format()),
        });
    }
    let stored = StoredResponse::decode(replay.response())?;
    let mut response = http::Response::new(stored.body);
    *response.status_mut() = stored.status;
    for (name, value) in stored.headers {
        response.headers_mut().append(name, value);
    }
    Ok(response)
}

/// The envelope as a body for `complete`/`fail_terminal`.
pub(crate) struct Envelope(pub(crate) Vec<u8>);

impl Body for Envelope {
    fn to_body(&self) -> Result<(Cow<'_, [u8]>, BodyFormat)> {
        Ok((Cow::Borrowed(&self.0), BodyFormat::Http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn sample() -> StoredResponse {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::SET_COOKIE, HeaderValue::from_static("s=1"));
        h.insert(header::DATE, HeaderValue::from_static("Tue, 01 Dec 2026 09:00:00 GMT"));
        h.append(header::LINK, HeaderValue::from_static("<a>; rel=a"));
        h.append(header::LINK, HeaderValue::from_static("<b>; rel=b"));
        h.insert(header::LOCATION, HeaderValue::from_bytes(b"/ch/\xe9").unwrap());
        let allow = [header::CONTENT_TYPE, header::LINK, header::LOCATION];
        StoredResponse::new(StatusCode::CREATED, &h, &allow, Bytes::from_static(b"{\"id\":1}\0"))
    }

    #[test]
    fn round_trip_keeps_only_allowed_headers_in_order() {
        let s = sample();
        assert_eq!(s.headers.len(), 4);
        assert!(s.headers.iter().all(|(n, _)| n != header::SET_COOKIE && n != header::DATE));
        let bytes = s.encode().unwrap();
        assert_eq!(bytes.len(), s.overhead() + s.body.len());
        assert_eq!(StoredResponse::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn every_status_round_trips_and_bad_ones_are_refused() {
        for code in 100..=999u16 {
            let s = StoredResponse {
                status: StatusCode::from_u16(code).unwrap(),
                headers: vec![],
                body: Bytes::new(),
            };
            assert_eq!(StoredResponse::decode(&s.encode().unwrap()).unwrap(), s);
        }
        for code in [0u16, 99, 1000, u16::MAX] {
            let mut b = vec![1];
            b.extend_from_slice(&code.to_le_bytes());
            b.extend_from_slice(&[0, 0]);
            assert!(matches!(StoredResponse::decode(&b), Err(Error::Codec { .. })), "{code}");
        }
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_body() {
        let s = sample();
        let bytes = s.encode().unwrap();
        let header_end = bytes.len() - s.body.len();
        for len in 0..bytes.len() {
            let got = StoredResponse::decode(&bytes[..len]);
            if len < header_end {
                assert!(matches!(got, Err(Error::Codec { .. })), "{len}");
            } else {
                assert_eq!(got.unwrap().body.len(), len - header_end);
            }
        }
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panic() {
        // Every single-byte change of a valid envelope, and short garbage.
        let bytes = sample().encode().unwrap();
        for at in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[at] = v;
                let _ = StoredResponse::decode(&b);
            }
        }
        for b in [&b""[..], b"\x01", b"\x02\xc8\x00\x00\x00", b"\x01\xc8\x00\x01\x00\xff\xff"] {
            assert!(StoredResponse::decode(b).is_err());
        }
        // A header name that is not lowercase is not what this build writes.
        let mut b = vec![1, 200, 0, 1, 0, 1, 0, b'A', 1, 0, b'x'];
        assert!(StoredResponse::decode(&b).is_err());
        b[7] = b'a';
        assert_eq!(StoredResponse::decode(&b).unwrap().headers.len(), 1);
    }
}
