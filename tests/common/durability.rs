//! The durability modes the tests run in.

use std::time::Duration;

use idemkv::Durability;

/// The Buffered mode used by the tests.
pub fn buffered() -> Durability {
    Durability::Buffered { max_delay: Duration::from_millis(5) }
}

/// Both durability modes, labelled.
pub fn modes() -> [(&'static str, Durability); 2] {
    [("durable", Durability::Durable), ("buffered", buffered())]
}
