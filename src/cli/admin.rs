//! `dtaas admin ...` on the server's machine: through the admin socket of a running server,
//! else directly on its stopped database (the same [`execute`]).

use crate::core::clock::Clock;
use crate::core::config::Config;
use crate::core::error::Error;
use crate::core::store::StoreError;
use crate::domains::open_store;
use crate::faces::admin::{AdminReply, AdminRequest, SOCKET_FILE, execute};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error("{0}")]
    Refused(String),
    #[error("admin socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "a dtaas server holds {dir} but its admin socket does not answer ({socket_error}); \
         run this as the server's user or as root"
    )]
    Unreachable { dir: PathBuf, socket_error: String },
    #[error(
        "no database at {}: is this the right --data-dir? (the configuration read is --config, \
         else /etc/dtaas/dtaas.toml when it exists; DTAAS_DATA_DIR overrides it)",
        .dir.join(crate::core::store::DB_FILE).display()
    )]
    NoDatabase { dir: PathBuf },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Failed(#[from] Error),
}

/// The client side: through the socket of a running server, else directly on the database.
pub async fn run(
    config: &Config,
    clock: &dyn Clock,
    request: AdminRequest,
) -> Result<(String, Via), AdminClientError> {
    let dir = &config.data_dir;
    let socket = dir.join(SOCKET_FILE);
    match UnixStream::connect(&socket).await {
        Ok(stream) => {
            let reply =
                exchange(stream, &request)
                    .await
                    .map_err(|source| AdminClientError::Socket {
                        path: socket.clone(),
                        source,
                    })?;
            if reply.ok {
                Ok((reply.message, Via::Socket))
            } else {
                Err(AdminClientError::Refused(reply.message))
            }
        }
        Err(_) if !dir.join(crate::core::store::DB_FILE).exists() => {
            Err(AdminClientError::NoDatabase { dir: dir.clone() })
        }
        Err(socket_error) => match open_store(dir) {
            Ok(store) => {
                let message = execute(&store, clock, config.registration, request)?;
                Ok((message, Via::Database))
            }
            Err(StoreError::Locked { .. }) => Err(AdminClientError::Unreachable {
                dir: dir.clone(),
                socket_error: socket_error.to_string(),
            }),
            Err(e) => Err(e.into()),
        },
    }
}

/// How an admin request reached the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Socket,
    Database,
}

async fn exchange(stream: UnixStream, request: &AdminRequest) -> std::io::Result<AdminReply> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await?;
    serde_json::from_str(&reply).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("malformed reply: {e}"),
        )
    })
}
