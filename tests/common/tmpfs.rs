//! A tmpfs mounted for one test (root only), unmounted on drop: a small or
//! read-only file system for full-disk and read-only cases.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TestResult;

/// A mounted tmpfs; unmounted (lazily if busy) when dropped.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (e.g. `size=16m`) on `dir`, or prints a
    /// note naming `what` is skipped and returns `None` when not root or when
    /// `mount` fails.
    pub fn mount(dir: &Path, options: &str, what: &str) -> Option<Tmpfs> {
        if !super::is_root() {
            println!("note: not root, skipping {what}");
            return None;
        }
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("note: `mount -t tmpfs -o {options}` failed, skipping {what}");
            return None;
        }
        Some(Tmpfs { dir: dir.to_path_buf() })
    }

    /// Remounts with other `options` (e.g. a larger size).
    pub fn remount(&self, options: &str) -> TestResult {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()?;
        if status.success() { Ok(()) } else { Err(format!("remount {options} failed").into()) }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let plain = Command::new("umount").arg(&self.dir).status();
        if !plain.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
