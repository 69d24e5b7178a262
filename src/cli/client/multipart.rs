//! `multipart/form-data` bodies for the `/v1` routes that take files (an image's Dockerfile and
//! attachments, a job's inbox): text fields, and files streamed from disk as the request goes
//! (never read whole into memory).

use super::http::{Body, BoxError, Payload};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::path::{Path, PathBuf};

/// A form being put together.
pub struct Multipart {
    boundary: String,
    parts: Vec<Part>,
}

enum Part {
    Text {
        name: String,
        value: String,
    },
    File {
        name: String,
        file_name: String,
        path: PathBuf,
    },
}

/// A field or file name inside a part header: `"`, CR and LF percent-encoded, as browsers do
/// (a name can then neither end its quotes nor its header line).
fn quoted(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Multipart {
    /// An empty form with a random boundary (no file realistically holds it).
    pub fn new() -> Multipart {
        let random: [u8; 16] = rand::random();
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Multipart {
            boundary: format!("dtaas-{hex}"),
            parts: Vec::new(),
        }
    }

    pub fn text(&mut self, name: &str, value: &str) {
        self.parts.push(Part::Text {
            name: name.to_owned(),
            value: value.to_owned(),
        });
    }

    /// A file part named `name`, sent under the file's own name. The file must be a readable
    /// regular file now (it is read when the request is sent).
    pub fn file(&mut self, name: &str, path: &Path) -> Result<(), String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: its name is not UTF-8", path.display()))?
            .to_owned();
        self.parts.push(Part::File {
            name: name.to_owned(),
            file_name,
            path: path.to_owned(),
        });
        Ok(())
    }

    /// The form as a request body.
    pub fn into_payload(self) -> Payload {
        Payload::Stream {
            content_type: self.content_type(),
            body: self.into_body(),
        }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The body: each part's header, its text or the file's bytes as they are read, and the
    /// closing boundary.
    pub fn into_body(self) -> Body {
        let boundary = self.boundary;
        let mut pieces: Vec<BoxStream<'static, Result<Bytes, BoxError>>> = Vec::new();
        let once = |bytes: Bytes| stream::once(async move { Ok(bytes) }).boxed();
        for part in self.parts {
            match part {
                Part::Text { name, value } => {
                    pieces.push(once(Bytes::from(format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
                        quoted(&name)
                    ))));
                }
                Part::File {
                    name,
                    file_name,
                    path,
                } => {
                    pieces.push(once(Bytes::from(format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                        quoted(&name),
                        quoted(&file_name)
                    ))));
                    pieces.push(file_stream(path));
                    pieces.push(once(Bytes::from_static(b"\r\n")));
                }
            }
        }
        pieces.push(once(Bytes::from(format!("--{boundary}--\r\n"))));
        let frames = stream::iter(pieces)
            .flatten()
            .map(|chunk| chunk.map(Frame::data));
        StreamBody::new(frames).boxed_unsync()
    }
}

/// A file's bytes, opened when the body gets to it; a failure ends the request with an error.
fn file_stream(path: PathBuf) -> BoxStream<'static, Result<Bytes, BoxError>> {
    stream::once(async move { tokio::fs::File::open(&path).await.map(|f| (f, path)) })
        .map(|opened| match opened {
            Ok((file, _)) => tokio_util::io::ReaderStream::new(file)
                .map(|chunk| chunk.map_err(BoxError::from))
                .boxed(),
            Err(e) => stream::once(async move { Err(BoxError::from(e)) }).boxed(),
        })
        .flatten()
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_are_framed_and_names_cannot_break_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a\"b.txt");
        std::fs::write(&path, b"file body").unwrap();
        let mut form = Multipart::new();
        form.text("name", "tool");
        form.file("attachments", &path).unwrap();
        let boundary = form.boundary.clone();
        assert!(form.content_type().ends_with(&boundary));
        let body = form.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ntool\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"attachments\"; \
                 filename=\"a%22b.txt\"\r\nContent-Type: application/octet-stream\r\n\r\n\
                 file body\r\n--{boundary}--\r\n"
            )
        );
        assert!(Multipart::new().file("x", dir.path()).is_err());
        assert!(
            Multipart::new()
                .file("x", &dir.path().join("missing"))
                .is_err()
        );
    }
}
