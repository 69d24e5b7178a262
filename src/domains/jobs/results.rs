//! A job's results: its `/outbox`, a bind-mounted host directory, packed into a zip when the job
//! ends (what `?result` serves), written to a temporary file and renamed into place.
//!
//! The directory was written by the container: symbolic links are skipped, never followed (a
//! job could point one at any file of the host), and so is anything that is not a plain file or
//! directory.

use crate::core::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

/// Packs the contents of `dir` into a zip at `zip_path`; returns the bytes of the files in it.
pub fn dir_to_zip(dir: &Path, zip_path: &Path) -> Result<u64> {
    let io = |e: std::io::Error| Error::internal(format!("saving the outbox: {e}"));
    let zerr = |e: zip::result::ZipError| Error::internal(format!("writing the result zip: {e}"));
    let tmp = zip_path.with_extension("zip.tmp");
    let out = std::fs::File::create(&tmp).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let mut total = 0u64;
    // Depth-first, names sorted, so that the zip is the same for the same outbox.
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = pending.pop() {
        let mut entries: Vec<_> = match std::fs::read_dir(&path) {
            Ok(rd) => rd.collect::<std::io::Result<_>>().map_err(io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(entry.path()).map_err(io)?;
            if meta.is_dir() {
                zip.add_directory(child_rel.as_str(), options)
                    .map_err(zerr)?;
                pending.push((entry.path(), child_rel));
            } else if meta.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                zip.start_file(child_rel.as_str(), options.unix_permissions(mode))
                    .map_err(zerr)?;
                let mut file = std::fs::File::open(entry.path()).map_err(io)?;
                total += std::io::copy(&mut file, &mut zip).map_err(io)?;
            }
        }
    }
    let mut out = zip.finish().map_err(zerr)?;
    out.flush().map_err(io)?;
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp, zip_path).map_err(io)?;
    Ok(total)
}
