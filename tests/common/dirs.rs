//! Test directories: fast temporary ones, copies, and whether permission
//! bits apply.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TestResult;

/// Recursively copies a directory.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// True when the tests run as root (file permission bits do not apply).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A temporary directory on a RAM-backed file system when one is usable
/// (`/dev/shm`, or `IDEMKV_TEST_TMPDIR`), else in the default temp dir. The
/// many-case tests open thousands of stores; every open and close fsyncs,
/// which costs milliseconds on a disk and nothing on tmpfs. A process crash
/// (SIGKILL) loses nothing the kernel holds, so tmpfs proves the same there.
pub fn fast_tempdir() -> TestResult<tempfile::TempDir> {
    let candidates = std::env::var_os("IDEMKV_TEST_TMPDIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/dev/shm")]);
    for base in candidates {
        if base.is_dir()
            && let Ok(dir) = tempfile::Builder::new().prefix("idemkv-test").tempdir_in(&base)
        {
            return Ok(dir);
        }
    }
    Ok(tempfile::tempdir()?)
}
