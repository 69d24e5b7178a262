//! File helpers shared by the domains that keep files next to the database, and the file
//! modes the appliance keeps: everything it makes is its own (umask 077, the data directory
//! 0700), and what a container must read is opened up one file at a time.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Files and directories the process creates are its own alone (umask 077). Called once when
/// the server opens its data directory: the database holds password hashes, and what jobs and
/// servables leave behind must not be reachable by other local users.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Sets a path's mode (permission bits).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Makes a directory (and its parents) readable by any user, with the files directly in it:
/// content a container reads whatever user its image runs as (attachments, build contexts).
/// The data directory above it stays 0700, so other local users still cannot reach it.
pub fn open_for_containers(dir: &Path) -> std::io::Result<()> {
    set_mode(dir, 0o755)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_file() {
            set_mode(&entry.path(), 0o644)?;
        } else if kind.is_dir() {
            open_for_containers(&entry.path())?;
        }
    }
    Ok(())
}

/// Moves a file into place: a rename, or a copy and delete across file systems.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(_) => {
            std::fs::copy(from, to)?;
            std::fs::remove_file(from)
        }
    }
}

/// Removes a directory tree when dropped (work directories of builds and exports).
pub struct RemoveDirOnDrop(pub PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes a file when dropped (temporary archives).
pub struct RemoveFileOnDrop(pub PathBuf);

impl Drop for RemoveFileOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
