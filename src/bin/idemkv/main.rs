//! The `idemkv` command (placeholder until the CLI lands).
fn main() {}
