//! Property tests: no input makes a verifier panic, and what a scheme
//! signs it verifies, and nothing else.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::{GitHub, SignatureError, StandardWebhooks, Stripe, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Header-ish text built from the pieces the parsers look for.
fn fragments() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("v1,".to_string()),
        Just("v1a,".to_string()),
        Just("v1=".to_string()),
        Just("v0=".to_string()),
        Just("t=".to_string()),
        Just("sha256=".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        Just(".".to_string()),
        Just("=".to_string()),
        Just("-".to_string()),
        "[0-9]{1,25}",
        "[A-Za-z0-9+/=]{0,50}",
        "[0-9a-fA-F]{0,70}",
        Just("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_string()),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// Any bytes a header value can hold (no controls but tab, no DEL), or
/// parser-shaped text.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    // Every byte a header value may hold: tab, and 0x20..=0xFF but DEL.
    let byte = (0x20u8..=0xff).prop_map(|b| if b == 0x7f { b'\t' } else { b });
    let raw = prop::collection::vec(byte, 0..120)
        .prop_map(|b| HeaderValue::from_bytes(&b).expect("only allowed bytes"));
    let shaped =
        fragments().prop_filter_map("not a header value", |s| HeaderValue::from_str(&s).ok());
    prop_oneof![raw, shaped]
}

const NAMES: [&str; 8] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "stripe-signature",
    "x-hub-signature-256",
];

/// A header map holding any of the names the schemes read, each zero,
/// one or two times, with arbitrary values.
fn headers() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec((0..NAMES.len(), header_value()), 0..12).prop_map(|entries| {
        let mut h = HeaderMap::new();
        for (i, value) in entries {
            h.append(NAMES[i], value);
        }
        h
    })
}

/// Any instant a `SystemTime` can hold around the epoch, both sides.
fn instant() -> impl Strategy<Value = SystemTime> {
    (any::<bool>(), any::<u64>()).prop_map(|(after, secs)| {
        let d = Duration::from_secs(secs);
        let t = if after { UNIX_EPOCH.checked_add(d) } else { UNIX_EPOCH.checked_sub(d) };
        t.unwrap_or(UNIX_EPOCH)
    })
}

fn verifiers() -> Vec<Box<dyn Verifier>> {
    vec![
        Box::new(StandardWebhooks::new(SECRET).expect("secret")),
        Box::new(Stripe::new(SECRET).expect("secret").tolerance(Duration::MAX)),
        Box::new(GitHub::new(SECRET).expect("secret")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_headers_body_or_time_panics(
        h in headers(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        now in instant(),
    ) {
        for v in verifiers() {
            // Any answer will do, as long as it is one: forged input never passes.
            prop_assert!(v.verify(&h, &body, now).is_err());
        }
    }

    #[test]
    fn no_secret_panics(secret in prop_oneof![fragments(), any::<String>()]) {
        let _ = StandardWebhooks::new(&secret);
        let _ = StandardWebhooks::new(&format!("whsec_{secret}"));
        prop_assert_eq!(Stripe::new(&secret).is_ok(), !secret.is_empty());
        prop_assert_eq!(GitHub::new(&secret).is_ok(), !secret.is_empty());
        if let Err(e) = StandardWebhooks::new(&secret) {
            let is_secret_error = matches!(e, SignatureError::InvalidSecret { .. });
            prop_assert!(is_secret_error);
        }
    }

    #[test]
    fn standard_verifies_what_it_signs_and_nothing_altered(
        id in "[A-Za-z0-9_-]{1,40}",
        ts in any::<u64>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        flip in any::<prop::sample::Index>(),
    ) {
        let v = StandardWebhooks::new(SECRET).expect("secret");
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_str(&id).expect("id"));
        h.insert("webhook-timestamp", HeaderValue::from(ts));
        h.insert("webhook-signature", HeaderValue::from_str(&v.sign(&id, ts, &body)).expect("sig"));
        let now = UNIX_EPOCH.checked_add(Duration::from_secs(ts)).unwrap_or(UNIX_EPOCH);
        let v = v.tolerance(Duration::MAX);
        prop_assert_eq!(v.verify(&h, &body, now), Ok(()));
        if !body.is_empty() {
            let mut altered = body.clone();
            altered[flip.index(body.len())] ^= 1;
            prop_assert_eq!(v.verify(&h, &altered, now), Err(SignatureError::NoValidSignature));
        }
    }

    #[test]
    fn stripe_and_github_verify_what_they_sign(
        ts in any::<u64>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        extra in prop::collection::vec(prop_oneof![Just("v0=ab"), Just("v1=00"), Just("x")], 0..20),
    ) {
        let stripe = Stripe::new(SECRET).expect("secret").tolerance(Duration::MAX);
        let mut value = stripe.sign(ts, &body);
        for e in &extra {
            value.push(',');
            value.push_str(e);
        }
        let mut h = HeaderMap::new();
        h.insert("stripe-signature", HeaderValue::from_str(&value).expect("value"));
        h.insert("x-hub-signature-256", HeaderValue::from_str(&GitHub::new(SECRET).expect("secret").sign(&body)).expect("value"));
        prop_assert_eq!(stripe.verify(&h, &body, UNIX_EPOCH), Ok(()));
        prop_assert_eq!(GitHub::new(SECRET).expect("secret").verify(&h, &body, UNIX_EPOCH), Ok(()));
        let mut longer = body.clone();
        longer.push(0);
        prop_assert_eq!(stripe.verify(&h, &longer, UNIX_EPOCH), Err(SignatureError::NoValidSignature));
    }

    #[test]
    fn many_entries_are_bounded_not_fatal(n in 0usize..400) {
        let v = StandardWebhooks::new(SECRET).expect("secret");
        let good = v.sign("msg_1", 0, b"{}");
        let list = std::iter::repeat_n("v1,AAAA", n).chain([good.as_str()]).collect::<Vec<_>>().join(" ");
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static("msg_1"));
        h.insert("webhook-timestamp", HeaderValue::from_static("0"));
        h.insert("webhook-signature", HeaderValue::from_str(&list).expect("list"));
        let got = v.verify(&h, b"{}", UNIX_EPOCH);
        if n < 32 {
            prop_assert_eq!(got, Ok(()));
        } else {
            let malformed = matches!(got, Err(SignatureError::MalformedHeader { .. }));
            prop_assert!(malformed);
        }
    }
}
