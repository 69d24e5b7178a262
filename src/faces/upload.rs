//! Request bodies with files: multipart (`curl -F`, `requests.post(files=)`), or a plain form or
//! JSON without files. Files are streamed to a staging directory under `<data>/tmp` (never held
//! in memory), counted against `limits.max_upload_mb` (413 beyond), and named safely (400 for
//! names with `..`, `/` or NUL). The staging directory goes away with the `Upload`.

use super::state::App;
use crate::core::error::{Error, Result};
use crate::core::id::Id;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

pub struct Upload {
    fields: Vec<(String, String)>,
    files: Vec<StagedFile>,
    staging: Option<PathBuf>,
}

pub struct StagedFile {
    pub field: String,
    pub name: String,
    pub path: PathBuf,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(dir) = &self.staging {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Checks an attachment's file name.
pub fn check_file_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 255
        || name.contains('/')
        || name.contains('\0')
        || name.contains("..")
        || name == "."
    {
        return Err(Error::bad_request(format!(
            "attachment name {name:?} is not allowed: names may not be empty or contain '..', '/' \
             or NUL"
        )));
    }
    Ok(())
}

fn body_error(e: impl std::fmt::Display, status: StatusCode, limit_mb: u64) -> Error {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Error::TooLarge(format!(
            "the request is larger than {limit_mb} MiB (limits.max_upload_mb)"
        ))
    } else {
        Error::bad_request(format!("invalid request body: {e}"))
    }
}

impl Upload {
    /// The first value of a field.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A field that must be there.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.text(key)
            .ok_or_else(|| Error::bad_request(format!("missing field `{key}`")))
    }

    /// Every value of a field (repeated form keys, JSON arrays, comma-separated text).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == key || k.strip_suffix("[]") == Some(key))
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A yes/no field; absent is `default`.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.text(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                other => Err(Error::bad_request(format!(
                    "`{key}` must be true or false, not {other:?}"
                ))),
            },
        }
    }

    /// The files sent under `field`: (file name, staged path). Names are unique.
    pub fn files(&self, field: &str) -> Result<Vec<(String, PathBuf)>> {
        let mut out: Vec<(String, PathBuf)> = Vec::new();
        for f in self.files.iter().filter(|f| f.field == field) {
            if out.iter().any(|(n, _)| *n == f.name) {
                return Err(Error::bad_request(format!(
                    "two attachments are named {:?}",
                    f.name
                )));
            }
            out.push((f.name.clone(), f.path.clone()));
        }
        Ok(out)
    }

    /// Refuses files under any field but `allowed`.
    pub fn only_files_in(&self, allowed: &[&str]) -> Result<()> {
        match self
            .files
            .iter()
            .find(|f| !allowed.contains(&f.field.as_str()))
        {
            Some(f) => Err(Error::bad_request(format!(
                "unexpected file in field `{}`",
                f.field
            ))),
            None => Ok(()),
        }
    }

    /// Refuses what a form that states its fields does not take (/v1's): a text field not
    /// named in `text`, a text field given more than once, a file under a field not named in
    /// `files`.
    pub fn check_fields(&self, text: &[&str], files: &[&str]) -> Result<()> {
        for (i, (key, _)) in self.fields.iter().enumerate() {
            if !text.contains(&key.as_str()) {
                return Err(Error::bad_request(if files.contains(&key.as_str()) {
                    format!("`{key}` takes files (parts with a file name), not text")
                } else {
                    format!("unexpected field `{key}`")
                }));
            }
            if self.fields[..i].iter().any(|(k, _)| k == key) {
                return Err(Error::bad_request(format!(
                    "`{key}` is given more than once"
                )));
            }
        }
        self.only_files_in(files)
    }

    /// A field sent as text or as a small file (e.g. `-F dockerfile=@Dockerfile`).
    pub fn text_or_file(&self, key: &str) -> Result<Option<String>> {
        if let Some(v) = self.text(key) {
            return Ok(Some(v.to_owned()));
        }
        match self.files.iter().find(|f| f.field == key) {
            Some(f) => std::fs::read_to_string(&f.path)
                .map(Some)
                .map_err(|e| Error::bad_request(format!("`{key}` must be UTF-8 text: {e}"))),
            None => Ok(None),
        }
    }
}

impl FromRequest<App> for Upload {
    type Rejection = Error;

    async fn from_request(req: Request, app: &App) -> Result<Self> {
        let limit_mb = app.config.limits.max_upload_mb;
        let limit = limit_mb.saturating_mul(1024 * 1024);
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !content_type.starts_with("multipart/form-data") {
            let bytes = Bytes::from_request(req, app)
                .await
                .map_err(|e| body_error(&e, e.status(), limit_mb))?;
            let fields = if content_type.starts_with("application/json") {
                json_fields(&bytes)?
            } else {
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                    .map_err(|e| Error::bad_request(format!("invalid form: {e}")))?
            };
            return Ok(Upload {
                fields,
                files: Vec::new(),
                staging: None,
            });
        }

        let mut multipart = Multipart::from_request(req, app)
            .await
            .map_err(|e| Error::bad_request(format!("invalid multipart body: {e}")))?;
        let mut upload = Upload {
            fields: Vec::new(),
            files: Vec::new(),
            staging: None,
        };
        let mut total: u64 = 0;
        loop {
            let field = multipart
                .next_field()
                .await
                .map_err(|e| body_error(&e, e.status(), limit_mb))?;
            let Some(mut field) = field else { break };
            let key = field.name().unwrap_or_default().to_owned();
            match field.file_name().map(str::to_owned) {
                Some(name) if name.is_empty() => {
                    // A file input left empty: browsers send it as a part with an empty file
                    // name and no content. Nothing was chosen, so nothing is kept; a part
                    // with content but no name is refused as any unnamed file is.
                    while let Some(chunk) = field
                        .chunk()
                        .await
                        .map_err(|e| body_error(&e, e.status(), limit_mb))?
                    {
                        if !chunk.is_empty() {
                            check_file_name(&name)?;
                        }
                    }
                }
                None => {
                    let value = field
                        .text()
                        .await
                        .map_err(|e| body_error(&e, e.status(), limit_mb))?;
                    total += value.len() as u64;
                    if total > limit {
                        return Err(body_error("", StatusCode::PAYLOAD_TOO_LARGE, limit_mb));
                    }
                    upload.fields.push((key, value));
                }
                Some(name) => {
                    check_file_name(&name)?;
                    let staging = match &upload.staging {
                        Some(s) => s.clone(),
                        None => {
                            let dir = app
                                .data_dir
                                .join("tmp")
                                .join(format!("upload-{}", Id::new()));
                            tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                                Error::internal(format!("creating a staging directory: {e}"))
                            })?;
                            upload.staging = Some(dir.clone());
                            dir
                        }
                    };
                    let path = staging.join(format!("{}", upload.files.len()));
                    let mut file = tokio::fs::File::create(&path)
                        .await
                        .map_err(|e| Error::internal(format!("staging an upload: {e}")))?;
                    while let Some(chunk) = field
                        .chunk()
                        .await
                        .map_err(|e| body_error(&e, e.status(), limit_mb))?
                    {
                        total += chunk.len() as u64;
                        if total > limit {
                            return Err(body_error("", StatusCode::PAYLOAD_TOO_LARGE, limit_mb));
                        }
                        file.write_all(&chunk)
                            .await
                            .map_err(|e| Error::internal(format!("staging an upload: {e}")))?;
                    }
                    file.flush()
                        .await
                        .map_err(|e| Error::internal(format!("staging an upload: {e}")))?;
                    upload.files.push(StagedFile {
                        field: key,
                        name,
                        path,
                    });
                }
            }
        }
        Ok(upload)
    }
}

/// A JSON object as form fields: strings as they are, numbers and booleans as text, arrays as
/// repeated fields.
fn json_fields(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let value: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::bad_request(format!("invalid JSON: {e}")))?
    };
    let serde_json::Value::Object(map) = value else {
        return Err(Error::bad_request("invalid JSON: expected an object"));
    };
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    for (k, v) in map {
        match &v {
            serde_json::Value::Array(items) => {
                for item in items {
                    let s = scalar(item).ok_or_else(|| {
                        Error::bad_request(format!("invalid JSON: `{k}` must hold plain values"))
                    })?;
                    out.push((k.clone(), s));
                }
            }
            serde_json::Value::Null => {}
            other => {
                let s = scalar(other).ok_or_else(|| {
                    Error::bad_request(format!("invalid JSON: `{k}` must be a plain value"))
                })?;
                out.push((k.clone(), s));
            }
        }
    }
    Ok(out)
}
