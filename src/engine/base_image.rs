//! A root file system made of one static busybox and its applet links, for `docker import`.

use crate::core::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The tag of the appliance's base image (what the examples' Dockerfiles start `FROM`).
pub const BASE_IMAGE: &str = "dtaas/busybox:latest";

/// Where Debian's `busybox-static` (and some other distributions) put the binary.
const CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox", "/usr/local/bin/busybox"];

/// A statically linked busybox on this machine, if any (a dynamic one would not run in an
/// otherwise empty image).
pub fn find_static_busybox() -> Option<PathBuf> {
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| std::fs::read(p).ok().is_some_and(|elf| is_static_elf(&elf)))
}

/// True for a 64-bit little-endian ELF file without a program interpreter.
fn is_static_elf(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if elf.get(0..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..usize::from(phnum))
        .all(|i| u32_at(phoff + i * usize::from(phentsize)).is_some_and(|t| t != PT_INTERP))
}

/// The applets a busybox binary provides, as it lists them itself.
fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| Error::internal(format!("running {} --list: {e}", busybox.display())))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_owned)
        .collect())
}

/// A tar of `/bin/busybox`, a link per applet, `/tmp`, and minimal `/etc/passwd` and `/etc/group`.
pub fn busybox_rootfs_tar(busybox: &Path) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::internal(format!("building the base image: {e}"));
    let binary = std::fs::read(busybox).map_err(io)?;
    let mut tar = tar::Builder::new(Vec::new());

    let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, path, std::io::empty()).map_err(io)
    };
    let file =
        |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| -> Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            h.set_mtime(0);
            tar.append_data(&mut h, path, data).map_err(io)
        };

    for d in ["bin", "etc", "root", "usr", "usr/bin", "var"] {
        dir(&mut tar, d, 0o755)?;
    }
    dir(&mut tar, "tmp", 0o1777)?;
    file(&mut tar, "bin/busybox", 0o755, &binary)?;
    file(
        &mut tar,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    file(
        &mut tar,
        "etc/group",
        0o644,
        b"root:x:0:\nnogroup:x:65534:\n",
    )?;
    for applet in applets(busybox)? {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .map_err(io)?;
    }
    tar.into_inner().map_err(io)
}
