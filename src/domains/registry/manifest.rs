//! Image manifests and indexes (OCI and Docker schema 2) read as typed documents, to learn what
//! they reference. The bytes a client pushed are stored and served exactly as they came; this
//! only decides whether they are a manifest the registry accepts and what they point at.

use super::error::{Code, RResult, RegistryError};
use super::meta::{Manifest, Sizes};
use super::names;
use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The fields of a manifest or an index the registry reads; others are kept in the bytes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: Option<u64>,
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    artifact_type: Option<String>,
    annotations: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: Option<String>,
    /// Read as any JSON number, to tell what is wrong with one that is not an int64.
    size: Option<serde_json::Number>,
}

/// A platform entry of an index (`manifests[].platform`).
#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    os: String,
    architecture: String,
}

#[derive(Deserialize)]
struct IndexDocument {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct ConfigRef {
    config: Descriptor,
}

fn invalid(why: impl std::fmt::Display) -> RegistryError {
    RegistryError::new(Code::ManifestInvalid, format!("manifest invalid: {why}"))
}

impl Descriptor {
    fn digest(&self) -> RResult<String> {
        let digest = self
            .digest
            .as_deref()
            .ok_or_else(|| invalid("a descriptor has no digest"))?;
        names::check_digest(digest)?;
        Ok(digest.to_owned())
    }

    /// The declared size, if any: a non-negative integer that fits an int64 (the OCI spec's
    /// type; a size of -1 or 2^64 is no size).
    fn size(&self) -> RResult<Option<u64>> {
        let Some(size) = &self.size else {
            return Ok(None);
        };
        size.as_i64()
            .and_then(|s| u64::try_from(s).ok())
            .map(Some)
            .ok_or_else(|| {
                invalid(format!(
                    "a descriptor's size must be a non-negative integer of at most {}, not {size}",
                    i64::MAX
                ))
            })
    }

    /// The declared size, which a descriptor of a reference must have.
    fn required_size(&self) -> RResult<u64> {
        self.size()?
            .ok_or_else(|| invalid("a descriptor has no size"))
    }
}

/// Reads a pushed manifest: its media type (the document's, else the `Content-Type`), what it
/// references, and its subject; and the sizes its references are declared with (required,
/// checked against what the registry holds when it is stored: `meta::put_manifest`). `digest`
/// is the digest of `bytes`; `now` the push time.
pub fn parse(
    bytes: &[u8],
    content_type: Option<&str>,
    digest: &str,
    now: i64,
) -> RResult<(Manifest, Sizes)> {
    let doc: Document = serde_json::from_slice(bytes).map_err(invalid)?;
    let declared = doc.media_type.as_deref();
    let media_type = declared
        .map(str::to_owned)
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_owned()))
        .ok_or_else(|| invalid("no media type"))?;
    if let (Some(field), Some(header)) = (declared, content_type)
        && !header.starts_with(field)
        && !header.starts_with("application/json")
    {
        return Err(invalid(
            "the Content-Type differs from the manifest's mediaType",
        ));
    }
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut sizes = Sizes::default();
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            if doc.schema_version != Some(2) {
                return Err(invalid("schemaVersion must be 2"));
            }
            let config = doc.config.as_ref().ok_or_else(|| invalid("no config"))?;
            let layers = doc.layers.as_deref().ok_or_else(|| invalid("no layers"))?;
            for blob in std::iter::once(config).chain(layers) {
                blobs.push(blob.digest()?);
                sizes.blobs.push(blob.required_size()?);
            }
        }
        OCI_INDEX | DOCKER_LIST => {
            if doc.schema_version != Some(2) {
                return Err(invalid("schemaVersion must be 2"));
            }
            for m in doc
                .manifests
                .as_deref()
                .ok_or_else(|| invalid("no manifests"))?
            {
                manifests.push(m.digest()?);
                sizes.manifests.push(m.required_size()?);
            }
        }
        other => return Err(invalid(format!("unsupported media type {other}"))),
    }
    // The subject need not be here: its size is checked for its type only.
    let subject = match &doc.subject {
        Some(s) => {
            s.size()?;
            Some(s.digest()?)
        }
        None => None,
    };
    let artifact_type = doc
        .artifact_type
        .or_else(|| doc.config.and_then(|c| c.media_type));
    let manifest = Manifest {
        digest: digest.to_owned(),
        media_type,
        size: bytes.len() as u64,
        blobs,
        manifests,
        subject,
        artifact_type,
        annotations: doc.annotations,
        created: now,
    };
    Ok((manifest, sizes))
}

/// The digest of an index's entry for `os`/`architecture`, if it has one.
pub fn platform_entry(index: &[u8], os: &str, architecture: &str) -> Option<String> {
    let index: IndexDocument = serde_json::from_slice(index).ok()?;
    index
        .manifests
        .into_iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == architecture)
        })
        .map(|m| m.digest)
}

/// The config blob's digest of an image manifest.
pub fn config_digest(manifest: &[u8]) -> Option<String> {
    let doc: ConfigRef = serde_json::from_slice(manifest).ok()?;
    doc.config.digest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn image(media_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}",
                "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
                "layers":[{{"mediaType":"x","digest":"{}","size":3}}],"annotations":{{"a":"b"}}}}"#,
            d(1),
            d(2)
        )
    }

    #[test]
    fn an_image_manifest_references_its_config_and_layers() {
        let bytes = image(OCI_MANIFEST);
        let (m, sizes) = parse(bytes.as_bytes(), Some(OCI_MANIFEST), &d(9), 7).expect("valid");
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.blobs, vec![d(1), d(2)]);
        assert_eq!(sizes.blobs, vec![2, 3]);
        assert!(sizes.manifests.is_empty());
        assert!(m.manifests.is_empty());
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(m.size, bytes.len() as u64);
        assert_eq!(m.annotations, Some(serde_json::json!({"a": "b"})));
        assert_eq!(m.created, 7);
    }

    #[test]
    fn an_index_references_its_manifests_and_a_subject_is_read() {
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
                {{"digest":"{}","size":10,"platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"digest":"{}","size":11,"platform":{{"os":"linux","architecture":"arm64"}}}}],
                "subject":{{"digest":"{}"}},"artifactType":"t"}}"#,
            d(3),
            d(4),
            d(5)
        );
        let (m, sizes) = parse(bytes.as_bytes(), None, &d(9), 0).expect("valid");
        assert_eq!(m.manifests, vec![d(3), d(4)]);
        assert_eq!(sizes.manifests, vec![10, 11]);
        assert_eq!(m.subject, Some(d(5)));
        assert_eq!(m.artifact_type.as_deref(), Some("t"));
        assert_eq!(
            platform_entry(bytes.as_bytes(), "linux", "arm64"),
            Some(d(4))
        );
        assert_eq!(platform_entry(bytes.as_bytes(), "linux", "s390x"), None);
    }

    #[test]
    fn the_content_type_names_the_media_type_when_the_document_does_not() {
        let bytes =
            image(DOCKER_MANIFEST).replace(&format!(r#""mediaType":"{DOCKER_MANIFEST}","#), "");
        let (m, _) = parse(
            bytes.as_bytes(),
            Some(&format!("{DOCKER_MANIFEST}; charset=utf-8")),
            &d(9),
            0,
        )
        .expect("valid");
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(config_digest(bytes.as_bytes()), Some(d(1)));
    }

    #[test]
    fn what_is_not_a_manifest_is_refused_with_the_reason() {
        let refuse = |bytes: &str, content_type: Option<&str>| {
            let e = parse(bytes.as_bytes(), content_type, &d(9), 0).expect_err("refused");
            assert_eq!(e.code, Code::ManifestInvalid, "{}", e.message);
            e.message
        };
        assert!(refuse("[]", None).contains("manifest invalid"));
        assert!(refuse("{}", None).contains("no media type"));
        assert!(
            refuse(
                &image(OCI_MANIFEST).replace("\"schemaVersion\":2", "\"schemaVersion\":1"),
                None
            )
            .contains("schemaVersion")
        );
        assert!(refuse(&image("text/plain"), None).contains("unsupported media type"));
        assert!(refuse(&image(OCI_MANIFEST), Some(DOCKER_MANIFEST)).contains("Content-Type"));
        let no_digest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"size":1}},"layers":[]}}"#
        );
        assert!(refuse(&no_digest, None).contains("no digest"));
        let no_layers = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}}}}"#,
            d(1)
        );
        assert!(refuse(&no_layers, None).contains("no layers"));
        // A malformed digest is the spec's DIGEST_INVALID.
        let bad = image(OCI_MANIFEST).replace(&d(2), "sha256:xyz");
        let e = parse(bad.as_bytes(), None, &d(9), 0).expect_err("refused");
        assert_eq!(e.code, Code::DigestInvalid);
    }

    #[test]
    fn a_descriptor_size_is_a_non_negative_int64() {
        let with_layer_size =
            |size: &str| image(OCI_MANIFEST).replace("\"size\":3", &format!("\"size\":{size}"));
        for size in ["0", "3", "9223372036854775807"] {
            let bytes = with_layer_size(size);
            let (_, sizes) = parse(bytes.as_bytes(), None, &d(9), 0).expect(size);
            assert_eq!(sizes.blobs[1].to_string(), size);
        }
        for size in [
            "-1",
            "9223372036854775808",
            "18446744073709551616",
            "3.0",
            "1e3",
            "\"3\"",
            "null",
        ] {
            let bytes = with_layer_size(size);
            let e = parse(bytes.as_bytes(), None, &d(9), 0).expect_err(size);
            assert_eq!(e.code, Code::ManifestInvalid, "{size}: {}", e.message);
        }
        // A reference without a size, in a manifest or an index.
        let no_size = image(OCI_MANIFEST).replace(",\"size\":2", "");
        let e = parse(no_size.as_bytes(), None, &d(9), 0).expect_err("no size");
        assert!(e.message.contains("no size"), "{}", e.message);
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"{}"}}]}}"#,
            d(3)
        );
        let e = parse(index.as_bytes(), None, &d(9), 0).expect_err("no size");
        assert!(e.message.contains("no size"), "{}", e.message);
        // A subject's size is checked when it has one.
        let subject = image(OCI_MANIFEST).replace(
            "\"annotations\"",
            &format!(
                r#""subject":{{"digest":"{}","size":-5}},"annotations""#,
                d(5)
            ),
        );
        let e = parse(subject.as_bytes(), None, &d(9), 0).expect_err("subject size");
        assert_eq!(e.code, Code::ManifestInvalid);
    }
}
