//! A job's results: its `/outbox`, taken from the stopped container as a tar stream and kept as a
//! zip (what `?result` serves), written to a temporary file and renamed into place.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;

/// Converts the engine's tar of `/outbox` into a zip of its contents; returns the bytes of the
/// files in it.
pub(super) fn tar_to_zip(tar_path: &Path, zip_path: &Path) -> Result<u64> {
    let io = |e: std::io::Error| Error::internal(format!("saving the outbox: {e}"));
    let zerr = |e: zip::result::ZipError| Error::internal(format!("writing the result zip: {e}"));
    let tmp = zip_path.with_extension("zip.tmp");
    let out = std::fs::File::create(&tmp).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let mut total = 0u64;
    if tar_path.exists() {
        let mut archive = tar::Archive::new(std::fs::File::open(tar_path).map_err(io)?);
        let mut buf = vec![0u8; 64 * 1024];
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let path = entry.path().map_err(io)?.to_string_lossy().into_owned();
            // The archive of /outbox holds `outbox/...`.
            let rel = path
                .trim_start_matches("./")
                .split_once('/')
                .map(|(_, rest)| rest.to_owned())
                .unwrap_or_default();
            if rel.is_empty() || rel.split('/').any(|c| c == "..") {
                continue;
            }
            match entry.header().entry_type() {
                tar::EntryType::Directory => {
                    zip.add_directory(rel.trim_end_matches('/'), options)
                        .map_err(zerr)?;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mode = entry.header().mode().unwrap_or(0o644);
                    zip.start_file(rel, options.unix_permissions(mode))
                        .map_err(zerr)?;
                    loop {
                        let n = entry.read(&mut buf).map_err(io)?;
                        if n == 0 {
                            break;
                        }
                        total += n as u64;
                        zip.write_all(&buf[..n]).map_err(io)?;
                    }
                }
                // Links and devices do not travel in a result zip.
                _ => {}
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
