//! A job's results: its `/outbox`, a bind-mounted host directory, packed into a zip when the job
//! ends (what `?result` serves), written to a temporary file and renamed into place.
//!
//! The directory was written by the container: symbolic links are skipped, never followed (a
//! job could point one at any file of the host), and so is anything that is not a plain file or
//! directory. Its size is bounded (`jobs.max_result_mb`, counted in uncompressed bytes): the
//! sizes the file system reports are added up before any file is read, so an outbox over the
//! limit (a sparse file of terabytes, say) is refused at once, without reading its holes; and
//! packing stops should the files read turn out larger than that.

use crate::core::error::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// What the walk of an outbox finds, in the order it is packed.
enum Found {
    Dir {
        rel: String,
        meta: std::fs::Metadata,
    },
    File {
        rel: String,
        path: PathBuf,
        meta: std::fs::Metadata,
    },
}

/// Walks `dir` depth-first, names sorted (so that the zip is the same for the same outbox),
/// without following links; `visit` sees every directory and plain file below it.
fn walk(dir: &Path, mut visit: impl FnMut(Found) -> Result<()>) -> Result<()> {
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
                pending.push((entry.path(), child_rel.clone()));
                visit(Found::Dir {
                    rel: child_rel,
                    meta,
                })?;
            } else if meta.is_file() {
                visit(Found::File {
                    rel: child_rel,
                    path: entry.path(),
                    meta,
                })?;
            }
        }
    }
    Ok(())
}

fn io(e: std::io::Error) -> Error {
    Error::internal(format!("saving the outbox: {e}"))
}

/// The bytes of the plain files below `dir` as the file system reports them (a sparse file
/// counts its apparent size); no file is read.
pub fn outbox_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0u64;
    walk(dir, |found| {
        if let Found::File { meta, .. } = found {
            total = total.saturating_add(meta.len());
        }
        Ok(())
    })?;
    Ok(total)
}

const MIB: u64 = 1024 * 1024;

/// Why a result is refused: `bytes` of files, over `max_mb` MiB.
pub fn too_large(bytes: u64, max_mb: u64) -> Error {
    Error::TooLarge(format!(
        "the job's outbox holds {:.1} MiB of files, over the limit of {max_mb} MiB for a \
         result (jobs.max_result_mb); no result was kept",
        bytes as f64 / MIB as f64
    ))
}

/// Packs the contents of `dir` into a zip at `zip_path`; returns the bytes of the files in it.
/// An outbox holding more than `max_mb` MiB of files is [`Error::TooLarge`] (with the message
/// for the job's error), and leaves no zip.
pub fn dir_to_zip(dir: &Path, zip_path: &Path, max_mb: u64) -> Result<u64> {
    let max_bytes = max_mb.saturating_mul(MIB);
    let refuse = |bytes: u64| {
        // A zip of an earlier attempt (before a restart) goes too.
        match std::fs::remove_file(zip_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return io(e),
        }
        too_large(bytes, max_mb)
    };
    let bytes = outbox_bytes(dir)?;
    if bytes > max_bytes {
        return Err(refuse(bytes));
    }
    let tmp = zip_path.with_extension("zip.tmp");
    match write_zip(dir, &tmp, max_bytes) {
        Ok(total) => {
            std::fs::rename(&tmp, zip_path).map_err(io)?;
            Ok(total)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            match e {
                Packing::Over(bytes) => Err(refuse(bytes)),
                Packing::Failed(e) => Err(e),
            }
        }
    }
}

enum Packing {
    /// The files read added up to more than the limit (at least this many bytes).
    Over(u64),
    Failed(Error),
}

impl From<Error> for Packing {
    fn from(e: Error) -> Packing {
        Packing::Failed(e)
    }
}

fn write_zip(dir: &Path, tmp: &Path, max_bytes: u64) -> Result<u64, Packing> {
    let zerr = |e: zip::result::ZipError| Error::internal(format!("writing the result zip: {e}"));
    let out = std::fs::File::create(tmp).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let dated = |meta: &std::fs::Metadata| match meta.modified().ok().and_then(zip_time) {
        Some(t) => options.last_modified_time(t),
        None => options,
    };
    let mut total = 0u64;
    let mut over = None;
    walk(dir, |found| {
        match found {
            Found::Dir { rel, meta } => {
                zip.add_directory(rel.as_str(), dated(&meta))
                    .map_err(zerr)?;
            }
            Found::File { rel, path, meta } => {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                zip.start_file(rel.as_str(), dated(&meta).unix_permissions(mode))
                    .map_err(zerr)?;
                // One byte more than the room left tells that a file grew past the limit.
                let room = max_bytes.saturating_sub(total).saturating_add(1);
                let file = std::fs::File::open(&path).map_err(io)?;
                total += std::io::copy(&mut file.take(room), &mut zip).map_err(io)?;
                if total > max_bytes {
                    over = Some(total);
                    return Err(Error::TooLarge(String::new()));
                }
            }
        }
        Ok(())
    })
    .map_err(|e| match over {
        Some(bytes) => Packing::Over(bytes),
        None => Packing::Failed(e),
    })?;
    let mut out = zip.finish().map_err(zerr)?;
    out.flush().map_err(io)?;
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(total)
}

/// A file's modification time as a zip entry's (UTC; zip cannot date before 1980 or after
/// 2107: such files get the format's default).
fn zip_time(t: std::time::SystemTime) -> Option<zip::DateTime> {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::<chrono::Utc>::from(t);
    zip::DateTime::from_date_and_time(
        u16::try_from(t.year()).ok()?,
        u8::try_from(t.month()).ok()?,
        u8::try_from(t.day()).ok()?,
        u8::try_from(t.hour()).ok()?,
        u8::try_from(t.minute()).ok()?,
        u8::try_from(t.second()).ok()?,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, SystemTime};

    fn outbox() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox");
        std::fs::create_dir(&outbox).unwrap();
        let zip = dir.path().join("result.zip");
        (dir, outbox, zip)
    }

    fn entries(zip: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut f = archive.by_index(i).unwrap();
                let mut content = Vec::new();
                f.read_to_end(&mut content).unwrap();
                (f.name().unwrap().to_string(), content)
            })
            .collect()
    }

    #[test]
    fn files_and_directories_are_packed_and_links_skipped() {
        let (_dir, outbox, zip) = outbox();
        std::fs::write(outbox.join("a"), "alpha").unwrap();
        std::fs::create_dir(outbox.join("d")).unwrap();
        std::fs::write(outbox.join("d/b"), "beta").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", outbox.join("link")).unwrap();
        assert_eq!(outbox_bytes(&outbox).unwrap(), 9);
        assert_eq!(dir_to_zip(&outbox, &zip, 1).unwrap(), 9);
        let mut got = entries(&zip);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("a".to_owned(), b"alpha".to_vec()),
                ("d/".to_owned(), vec![]),
                ("d/b".to_owned(), b"beta".to_vec()),
            ]
        );
        assert!(!zip.with_extension("zip.tmp").exists());
    }

    #[test]
    fn a_sparse_file_over_the_limit_is_refused_without_reading_it() {
        let (_dir, outbox, zip) = outbox();
        std::fs::write(outbox.join("small"), "x").unwrap();
        // 8 GiB of holes: reading them would take tens of seconds.
        let big = std::fs::File::create(outbox.join("big")).unwrap();
        big.set_len(8 << 30).unwrap();
        // A zip of an earlier attempt is not left to be served.
        std::fs::write(&zip, "stale").unwrap();
        let started = Instant::now();
        let err = dir_to_zip(&outbox, &zip, 1024).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        let Error::TooLarge(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("8192.0 MiB"), "{message}");
        assert!(message.contains("1024 MiB"), "{message}");
        assert!(message.contains("jobs.max_result_mb"), "{message}");
        assert!(!zip.exists());
        assert!(!zip.with_extension("zip.tmp").exists());
    }

    #[test]
    fn the_limit_counts_every_file_and_exactly_at_it_is_allowed() {
        let (_dir, outbox, zip) = outbox();
        std::fs::create_dir(outbox.join("d")).unwrap();
        for name in ["a", "d/b"] {
            std::fs::File::create(outbox.join(name))
                .unwrap()
                .set_len(MIB / 2)
                .unwrap();
        }
        assert_eq!(dir_to_zip(&outbox, &zip, 1).unwrap(), MIB);
        std::fs::write(outbox.join("d/c"), "one byte too many").unwrap();
        assert!(matches!(
            dir_to_zip(&outbox, &zip, 1),
            Err(Error::TooLarge(_))
        ));
        assert!(!zip.exists(), "the earlier zip went too");
    }

    #[test]
    fn packing_stops_when_the_files_read_exceed_the_limit() {
        let (_dir, outbox, zip) = outbox();
        let file = std::fs::File::create(outbox.join("a")).unwrap();
        file.set_len(MIB + 1).unwrap();
        // As if the file grew after the sizes were added up: pack with the walk's own limit.
        let tmp = zip.with_extension("zip.tmp");
        match write_zip(&outbox, &tmp, MIB) {
            Err(Packing::Over(bytes)) => assert_eq!(bytes, MIB + 1),
            Err(Packing::Failed(e)) => panic!("{e}"),
            Ok(n) => panic!("packed {n} bytes"),
        }
    }

    #[test]
    fn entries_keep_the_files_modification_times() {
        let (_dir, outbox, zip) = outbox();
        let path = outbox.join("a");
        std::fs::write(&path, "alpha").unwrap();
        // 2021-03-04 05:06:08 UTC
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_834_368);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        dir_to_zip(&outbox, &zip, 1).unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
        let t = archive.by_name("a").unwrap().last_modified().unwrap();
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2021, 3, 4, 5, 6, 8)
        );
        // Out of the format's range: the default date, not an error.
        assert!(zip_time(SystemTime::UNIX_EPOCH).is_none());
    }
}
