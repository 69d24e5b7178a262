//! `dtaas admin backup PATH` and `dtaas admin restore PATH`.
//!
//! A backup goes through the running server's admin socket (the server stages a consistent
//! snapshot in its data directory; this command copies it to PATH and tells the server it is
//! done), else, with no server running, takes the snapshot itself from the database. Either way
//! PATH is written by the user running the command. A restore needs the server stopped.

use super::admin::AdminClientError;
use crate::core::backup::{self as format, BackupError, Counts, Manifest};
use crate::core::clock::Clock;
use crate::core::config::Config;
use crate::core::store::{DB_FILE, StoreError};
use crate::domains::backup as backups;
use crate::faces::admin::{AdminReply, AdminRequest, BACKUP_DONE, SOCKET_FILE};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Directories of the data directory a backup holds whole (the server's generated TLS
/// certificate and authority): what the server's admin socket is told too.
const SERVER_DIRS: &[&str] = &[crate::server::tls::TLS_DIR];

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `dtaas admin backup PATH`: returns what to print, and whether the server took the snapshot.
pub async fn backup(
    config: &Config,
    clock: &dyn Clock,
    path: &Path,
) -> Result<(String, Vec<String>), String> {
    let dest = absolute(path)?;
    let dir = &config.data_dir;
    format::check_destination(&dest, dir).map_err(|e| e.to_string())?;
    let socket = dir.join(SOCKET_FILE);
    let (manifest, via) = match UnixStream::connect(&socket).await {
        Ok(stream) => (
            through_server(stream, &dest)
                .await
                .map_err(|e| format!("admin socket {}: {e}", socket.display()))?,
            "the running server",
        ),
        Err(_) if !dir.join(DB_FILE).exists() => {
            return Err(AdminClientError::NoDatabase { dir: dir.clone() }.to_string());
        }
        Err(socket_error) => {
            let store = match crate::domains::open_store(dir) {
                Ok(store) => store,
                Err(StoreError::Locked { .. }) => {
                    return Err(AdminClientError::Unreachable {
                        dir: dir.clone(),
                        socket_error: socket_error.to_string(),
                    }
                    .to_string());
                }
                Err(e) => return Err(e.to_string()),
            };
            let (data_dir, now) = (dir.clone(), clock.now());
            let manifest = blocking(move || {
                let staged = backups::snapshot(&store, &data_dir, SERVER_DIRS, now)?;
                format::write_backup(staged.dir(), &staged.inventory, &dest)
            })
            .await?;
            (manifest, "the stopped server's database")
        }
    };
    let mut warnings: Vec<String> = manifest
        .missing
        .iter()
        .map(|m| {
            format!(
                "warning: {} is not in the backup: {} (the data directory is damaged there)",
                m.path, m.reason
            )
        })
        .collect();
    let running = count(&manifest.counts, "jobs_running");
    if running > 0 {
        warnings.push(format!(
            "note: {running} job{} running when the snapshot was taken; a restore queues {} to \
             run again from the start",
            if running == 1 { " was" } else { "s were" },
            if running == 1 { "it" } else { "them" }
        ));
    }
    Ok((
        format!(
            "backup of {} written to {} (snapshot by {via}; {} files, {}): {}",
            dir.display(),
            path.display(),
            manifest.files.len(),
            bytes(manifest.total_bytes()),
            summary(&manifest.counts)
        ),
        warnings,
    ))
}

/// Asks the server for a snapshot, copies it to `dest`, and tells the server it is done.
async fn through_server(stream: UnixStream, dest: &Path) -> Result<Manifest, String> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(&AdminRequest::Backup).map_err(|e| e.to_string())?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| e.to_string())?;
    let mut read = BufReader::new(read);
    let mut answer = String::new();
    read.read_line(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let reply: AdminReply =
        serde_json::from_str(&answer).map_err(|e| format!("malformed reply: {e}"))?;
    if !reply.ok {
        return Err(reply.message);
    }
    let staged = reply
        .snapshot
        .ok_or_else(|| "the server staged no snapshot (is it an older dtaas?)".to_owned())?;
    let dest = dest.to_owned();
    let written = blocking(move || {
        let inventory = backups::read_inventory(&staged)?;
        format::write_backup(&staged, &inventory, &dest)
    })
    .await;
    // Done or not, the server may remove the snapshot now.
    let _ = write.write_all(format!("{BACKUP_DONE}\n").as_bytes()).await;
    let _ = write.shutdown().await;
    written
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the backup work failed: {e}")),
    }
}

/// `dtaas admin restore PATH [--force] [--verify-only]`.
pub async fn restore(
    config: &Config,
    clock: &dyn Clock,
    path: &Path,
    force: bool,
    verify_only: bool,
) -> Result<String, String> {
    let backup = absolute(path)?;
    if verify_only {
        let manifest = blocking(move || backups::verify(&backup)).await?;
        return Ok(format!(
            "the backup at {} is whole ({} files, {}, every checksum verified): taken {} by \
             dtaas {} from installation {}: {}",
            path.display(),
            manifest.files.len(),
            bytes(manifest.total_bytes()),
            manifest.created_at.to_rfc3339(),
            manifest.dtaas_version,
            manifest.installation,
            summary(&manifest.counts)
        ));
    }
    let dir = config.data_dir.clone();
    if UnixStream::connect(dir.join(SOCKET_FILE)).await.is_ok() {
        return Err(format!(
            "a dtaas server is running on {} (its admin socket answers): stop it first (e.g. \
             systemctl stop dtaas); a restore replaces its data",
            dir.display()
        ));
    }
    let (target, now) = (dir.clone(), clock.now());
    let restored = blocking(move || backups::restore(&backup, &target, force, now)).await?;
    let m = &restored.manifest;
    let mut lines = vec![format!(
        "restored the backup taken {} (installation {}) into {}: {}",
        m.created_at.to_rfc3339(),
        m.installation,
        dir.display(),
        summary(&m.counts)
    )];
    if restored.requeued > 0 {
        lines.push(format!(
            "{} job{} running when the backup was taken: queued to run again from the start",
            restored.requeued,
            was_were(restored.requeued)
        ));
    }
    if restored.cancelled > 0 {
        lines.push(format!(
            "{} job{} being killed when the backup was taken: cancelled",
            restored.cancelled,
            was_were(restored.cancelled)
        ));
    }
    if restored.uploads_dropped > 0 {
        lines.push(format!(
            "{} registry upload{} in progress then: dropped (clients push again)",
            restored.uploads_dropped,
            was_were(restored.uploads_dropped)
        ));
    }
    for missing in &m.missing {
        lines.push(format!(
            "warning: {} was not in the backup: {}",
            missing.path, missing.reason
        ));
    }
    if let Some((uid, gid)) = restored.owner {
        lines.push(format!(
            "the restored files belong to uid {uid}, gid {gid}, as the data directory did"
        ));
    }
    if let Some(aside) = &restored.replaced {
        lines.push(format!(
            "the previous contents of {} are in {}: remove it once the restored server works",
            dir.display(),
            aside.display()
        ));
    }
    lines.push(
        "start the server (e.g. systemctl start dtaas); it is the same installation, so start \
         it on no engine where the server it was taken from still runs"
            .into(),
    );
    Ok(lines.join("\n"))
}

fn count(counts: &Counts, key: &str) -> u64 {
    counts.get(key).copied().unwrap_or(0)
}

/// The counts a person reads first.
fn summary(counts: &Counts) -> String {
    let mut parts = Vec::new();
    for (key, one, many) in [
        ("users", "user", "users"),
        ("pipelines", "pipeline", "pipelines"),
        ("jobs", "job", "jobs"),
        ("results", "result", "results"),
        ("images", "image", "images"),
        ("repositories", "repository", "repositories"),
        ("blobs", "blob", "blobs"),
        ("servables", "servable", "servables"),
    ] {
        let n = count(counts, key);
        parts.push(format!("{n} {}", if n == 1 { one } else { many }));
    }
    parts.join(", ")
}

fn bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / MIB)
    }
}

/// The ending of a count's noun and its verb: "1 job was", "2 jobs were".
fn was_were(n: u64) -> &'static str {
    if n == 1 { " was" } else { "s were" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_what_matters() {
        let counts: Counts = [("users", 1), ("jobs", 3), ("blobs", 2)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let text = summary(&counts);
        assert!(text.starts_with("1 user, 0 pipelines, 3 jobs"), "{text}");
        assert!(text.contains("2 blobs"), "{text}");
        assert_eq!(bytes(512), "0.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
