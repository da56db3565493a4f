//! Bad directories: a regular file, a read-only directory, a directory in
//! use by another process.

use std::time::Duration;

use idemkv::{Error, Store};

use crate::common::tmpfs::Tmpfs;
use crate::common::{self, Ack, ChildProc, TestResult};
use crate::{io, plant, refused, still_there};

#[test]
fn a_regular_file_as_the_directory_is_an_io_error() -> TestResult {
    let _serial = common::serial();
    let root = common::fast_tempdir()?;
    let file = root.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    refused(Store::open(&file), io, &["creating data directory", "a-file"]);
    refused(Store::open(file.join("below")), io, &["I/O error"]);
    assert_eq!(std::fs::read(&file)?, b"not a directory", "left untouched");
    Ok(())
}

#[test]
fn a_read_only_directory_is_an_io_error() -> TestResult {
    let _serial = common::serial();
    let root = tempfile::tempdir()?;
    if common::is_root() {
        // Root ignores permission bits: use read-only mounts instead.
        let ro = root.path().join("ro");
        if let Some(_m) = Tmpfs::mount(&ro, "ro,size=1m", "the read-only sub-case") {
            refused(Store::open(&ro), io, &["LOCK", "Read-only file system"]);
            refused(Store::open(ro.join("sub")), io, &["creating data directory"]);
        }
        // An existing store whose file system turns read-only.
        let rw = root.path().join("rw");
        if let Some(m) = Tmpfs::mount(&rw, "size=16m", "the read-write sub-case") {
            let store = Store::open(&rw)?;
            plant(&store)?;
            store.close()?;
            m.remount("ro")?;
            refused(Store::open(&rw), io, &["Read-only file system"]);
            m.remount("rw")?;
            let store = Store::open(&rw)?;
            still_there(&store)?;
            store.close()?;
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.path().join("ro");
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555))?;
        refused(Store::open(&dir), io, &["LOCK", "ermission denied"]);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

#[test]
fn a_second_process_on_the_directory_is_locked_out() -> TestResult {
    let _serial = common::serial();
    let dir = common::fast_tempdir()?;
    let store = Store::open(dir.path())?;
    plant(&store)?;
    // In this process (see locked.rs for the full lifecycle).
    refused(
        Store::open(dir.path()),
        |e| matches!(e, Error::Locked { .. }),
        &["in use by another process", &dir.path().display().to_string()],
    );
    // From another process.
    let mut child = ChildProc::spawn(dir.path(), "try_open", &[])?;
    match child.next_ack(Duration::from_secs(60))? {
        Some(Ack::Result(r)) => assert_eq!(r, format!("LOCKED {}", dir.path().display())),
        other => panic!("child said {other:?}"),
    }
    assert!(child.wait()?.success());
    still_there(&store)
}
