//! Guards exclusive ownership of a data directory: a second Store, in this process or another, gets Error::Locked naming the path until the owner closes or drops its store.

mod common;

use std::time::Duration;

use common::{Ack, ChildProc, TestResult, acquire, key};
use idemkv::{Config, Error, Store};

#[test]
#[ignore = "child process of the crash tests; does nothing when run directly"]
fn child_worker() {
    common::child_main();
}

fn assert_locked(res: idemkv::Result<Store>, dir: &std::path::Path) {
    match res {
        Err(e @ Error::Locked { .. }) => {
            let Error::Locked { path } = &e else { unreachable!() };
            assert_eq!(path, dir);
            let msg = e.to_string();
            assert!(
                msg.contains(&dir.display().to_string()),
                "the message names the directory: {msg}"
            );
        }
        other => panic!("expected Error::Locked, got {other:?}"),
    }
}

#[test]
fn second_open_in_process_is_locked_until_close() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let first = Store::open(dir.path())?;
    assert_locked(Store::open(dir.path()), dir.path());
    assert_locked(Config::new().open(dir.path()), dir.path());
    // The refused open did not disturb the owner.
    let lease = acquire(&first, &key("k"), None)?;
    first.complete(&lease, b"v")?;
    first.close()?;

    let second = Store::open(dir.path())?;
    assert!(matches!(second.claim(&key("k"), None)?, idemkv::Claim::Replay(_)));
    assert_locked(Store::open(dir.path()), dir.path());
    drop(second); // the Drop path releases it too
    let third = Store::open(dir.path())?;
    third.close()?;
    Ok(())
}

#[test]
fn clones_of_a_closed_store_report_closed() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let clone = store.clone();
    store.close()?;
    assert!(matches!(clone.claim(&key("k"), None), Err(Error::Closed)));
    assert!(matches!(clone.flush(), Err(Error::Closed)));
    Ok(())
}

#[test]
fn close_releases_the_directory_even_with_live_clones() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let clone = store.clone();
    store.close()?;
    let reopened = Store::open(dir.path());
    assert!(reopened.is_ok(), "{reopened:?}");
    drop(clone);
    Ok(())
}

fn child_result(dir: &std::path::Path) -> TestResult<String> {
    let mut child = ChildProc::spawn(dir, "try_open", &[])?;
    let line = match child.next_ack(Duration::from_secs(60))? {
        Some(Ack::Result(r)) => r,
        other => return Err(format!("child said {other:?}").into()),
    };
    let status = child.wait()?;
    assert!(status.success(), "child exit: {status}");
    Ok(line)
}

#[test]
fn other_process_is_locked_out() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let seen = child_result(dir.path())?;
    assert_eq!(seen, format!("LOCKED {}", dir.path().display()));
    // Still ours.
    let lease = acquire(&store, &key("mine"), None)?;
    store.complete(&lease, b"v")?;
    store.close()?;

    assert_eq!(child_result(dir.path())?, "OPENED");
    // And the child let go again.
    Store::open(dir.path())?.close()?;
    Ok(())
}

#[test]
fn reopen_is_not_refused_while_the_process_spawns_children() -> TestResult {
    let _serial = common::serial();
    let dir = tempfile::tempdir()?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let exe = std::env::current_exe()?;
    std::thread::scope(|s| -> TestResult {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Any subprocess will do: this binary listing its tests.
                let _ = std::process::Command::new(&exe)
                    .arg("--list")
                    .stdout(std::process::Stdio::null())
                    .status();
            }
        });
        let res = (|| -> TestResult {
            for i in 0..50 {
                match Store::open(dir.path()) {
                    Ok(store) => store.close()?,
                    Err(e) => {
                        return Err(format!("cycle {i}: reopen after close failed: {e:?}").into());
                    }
                }
            }
            Ok(())
        })();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        res
    })
}
