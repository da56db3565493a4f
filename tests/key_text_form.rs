//! Guards the key's text form: `Key::parse(&key.to_string()) == key` for every key the library accepts (any UTF-8 namespace up to 64 bytes, any id bytes up to 1024), the printed form is one unambiguous token, and plain keys print unchanged.

use idemkv::{Key, MAX_ID_LEN, MAX_NAMESPACE_LEN};
use proptest::prelude::*;

/// Characters that matter to the text form, and any other.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![':', '%', ' ', '\n', '\t', '\0', '\u{7f}', '\u{85}',
            '\u{a0}', '\u{2028}', 'x', '0', 'F', 'é', '€', '😀']),
        2 => any::<char>(),
    ]
}

fn namespace() -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 1..=MAX_NAMESPACE_LEN).prop_map(|chars| {
        let mut ns = String::new();
        for c in chars {
            if ns.len() + c.len_utf8() > MAX_NAMESPACE_LEN {
                break;
            }
            ns.push(c);
        }
        ns
    })
}

/// Ids: UTF-8 text with tricky characters, ids that look like escapes or
/// hex, and arbitrary bytes.
fn id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(tricky_char(), 1..64)
            .prop_map(|cs| cs.into_iter().collect::<String>().into_bytes()),
        prop::sample::select(vec!["%25", "%3A", "0xff00", "0x", "%", "%%", "%zz", "a:b:c", "::"])
            .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(
            prop_oneof![Just(b':'), Just(b'%'), Just(0xffu8), Just(0x80u8), any::<u8>()],
            1..=MAX_ID_LEN
        ),
    ]
    .prop_map(|mut id| {
        id.truncate(MAX_ID_LEN);
        if id.is_empty() {
            id.push(b'x');
        }
        id
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn parse_is_the_exact_inverse_of_display(ns in namespace(), id in id()) {
        let key = Key::new(&ns, &id).expect("a key the library accepts");
        let text = key.to_string();
        prop_assert_eq!(Key::parse(&text).expect("its own text form parses"), key.clone());
        prop_assert_eq!(text.parse::<Key>().expect("FromStr"), key);
        // One token: no white space or control character survives unescaped,
        // and the first ':' is the separator.
        prop_assert!(!text.chars().any(|c| c.is_whitespace() || c.is_control()), "{}", text);
        let printed_ns = text.split_once(':').map(|(n, _)| n).unwrap_or_default();
        prop_assert!(!printed_ns.contains(':'));
    }
}

#[test]
fn plain_keys_print_unchanged() {
    for text in ["stripe:evt_1", "github:delivery-42", "s:a/b", "orders:2024-05-01T12:00:00Z"] {
        let key = Key::parse(text).expect("plain key");
        assert_eq!(key.to_string(), text);
    }
    let k = Key::parse("orders:2024-05-01T12:00:00Z").expect("plain key");
    assert_eq!((k.namespace(), k.id()), ("orders", &b"2024-05-01T12:00:00Z"[..]));
}

#[test]
fn look_alike_ids_stay_distinct() {
    let hexish = Key::new("s", "0xff00").expect("key");
    let binary = Key::new("s", [0xff, 0x00]).expect("key");
    let escaped = Key::new("s", "%FF%00").expect("key");
    let texts = [hexish.to_string(), binary.to_string(), escaped.to_string()];
    assert_eq!(texts, ["s:0xff00", "s:%FF%00", "s:%25FF%2500"]);
    assert_eq!(Key::parse(&texts[0]).expect("parse"), hexish);
    assert_eq!(Key::parse(&texts[1]).expect("parse"), binary);
    assert_eq!(Key::parse(&texts[2]).expect("parse"), escaped);
    let colon_ns = Key::new("a:b", "c").expect("key");
    let colon_id = Key::new("a", "b:c").expect("key");
    assert_eq!(colon_ns.to_string(), "a%3Ab:c");
    assert_eq!(colon_id.to_string(), "a:b:c");
}

#[test]
fn malformed_text_is_an_invalid_key_saying_what_to_write() {
    for bad in ["no-colon", ":id", "ns:", "ns:100%", "ns:%4", "ns:%zz", "%FF:id"] {
        match Key::parse(bad) {
            Err(idemkv::Error::InvalidKey { reason }) => assert!(!reason.is_empty()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match Key::parse("ns:100%") {
        Err(e) => assert!(e.to_string().contains("%25"), "{e}"),
        Ok(k) => panic!("{k:?}"),
    }
}
