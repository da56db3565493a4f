//! A panic in a background thread (here the sweeper, through a clock that
//! panics) poisons the store with a clear error instead of dying silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use idemkv::{Clock, Config, Error, Key, Millis};

#[derive(Debug, Clone, Default)]
struct PanickyClock {
    armed: Arc<AtomicBool>,
}

impl Clock for PanickyClock {
    fn now_millis(&self) -> Millis {
        if self.armed.load(Ordering::SeqCst)
            && std::thread::current().name() == Some("idemkv-sweeper")
        {
            panic!("clock exploded");
        }
        1_000_000
    }
}

#[test]
fn sweeper_panic_poisons_the_store() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = PanickyClock::default();
    let store = Config::new()
        .clock(clock.clone())
        .sweep_interval(Some(Duration::from_millis(5)))
        .open(dir.path())?;
    let key = Key::new("s", "k")?;
    let lease = store.claim(&key, None)?.into_lease().ok_or("not acquired")?;
    store.complete(&lease, b"kept")?;

    clock.armed.store(true, Ordering::SeqCst);
    // The sweeper runs every 5 ms; give it up to 10 s to hit the panic.
    let give_up = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match store.flush() {
            Err(e) => break e,
            Ok(()) if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(5)),
            Ok(()) => return Err("the store was never poisoned".into()),
        }
    };
    assert!(
        matches!(&err, Error::Poisoned { reason } if reason.contains("sweeper")
        && reason.contains("clock exploded")),
        "{err}"
    );
    assert!(err.to_string().contains("reopen"), "the message says what to do: {err}");
    // Writes are refused; the completed record is not lost.
    assert!(matches!(store.claim(&key, None), Err(Error::Poisoned { .. })));
    drop(store);
    clock.armed.store(false, Ordering::SeqCst);
    let store = Config::new().clock(clock).open(dir.path())?;
    match store.claim(&key, None)? {
        idemkv::Claim::Replay(r) => assert_eq!(r.response(), b"kept"),
        other => return Err(format!("expected a replay, got {other:?}").into()),
    }
    Ok(())
}
