//! Repository names, tags and digests as the distribution spec defines them.

use super::error::{Code, RResult, RegistryError};

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255 bytes.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 255 && !name.is_empty() && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or a run of "-", between alphanumerics.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

pub fn check_name(name: &str) -> RResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(
            RegistryError::new(Code::NameInvalid, "invalid repository name")
                .detail(serde_json::json!({ "name": name })),
        )
    }
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A sha256 digest, `sha256:` and 64 lowercase hex digits.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

pub fn check_digest(d: &str) -> RResult<()> {
    if valid_digest(d) {
        Ok(())
    } else if d.contains(':') {
        Err(RegistryError::new(
            Code::DigestInvalid,
            "unsupported or malformed digest (sha256 only)",
        )
        .detail(serde_json::json!({ "digest": d })))
    } else {
        Err(RegistryError::new(
            Code::DigestInvalid,
            "provided digest did not match uploaded content",
        )
        .detail(serde_json::json!({ "digest": d })))
    }
}

/// The digest of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "sha256:{}",
        crate::core::secrets::hex(&Sha256::digest(bytes))
    )
}

/// One path component of a repository name made from free text (a login, an image name).
pub use crate::core::names::slug as sanitize_component;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_distribution_grammar() {
        for good in [
            "a",
            "0",
            "ubuntu",
            "library/ubuntu",
            "alice/my-app/v2",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a1.b2-c3__d4",
            "x/y.z/a--b/c_d",
        ] {
            assert!(valid_name(good), "{good:?} should be valid");
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "A",
            "Alice/app",
            "a___b",
            "a..b",
            "a._b",
            "a_-b",
            "-a",
            "a-",
            ".a",
            "a.",
            "_a",
            "a_",
            "a/",
            "/a",
            "a//b",
            "a/-b",
            "a b",
            "a:b",
            "a@b",
            "a+b",
            "é",
        ] {
            assert!(!valid_name(bad), "{bad:?} should be invalid");
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.code, Code::NameInvalid);
            assert_eq!(err.detail, Some(serde_json::json!({ "name": bad })));
        }
    }

    #[test]
    fn names_are_at_most_255_bytes() {
        assert!(valid_name(&"a".repeat(255)));
        assert!(!valid_name(&"a".repeat(256)));
        // The limit counts the whole path, separators included.
        let path = ["abc"; 64].join("/"); // 64 * 3 + 63 = 255
        assert_eq!(path.len(), 255);
        assert!(valid_name(&path));
        assert!(!valid_name(&format!("{path}a")));
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        for good in ["latest", "v1.0", "_x", "A-b_c.d", "1", "0190b1f3c4d27a8e"] {
            assert!(valid_tag(good), "{good:?} should be valid");
        }
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        for bad in ["", ".x", "-x", "a:b", "a/b", "a+b", "a b", "é"] {
            assert!(!valid_tag(bad), "{bad:?} should be invalid");
        }
    }

    fn hex64(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn digests_are_sha256_with_64_lowercase_hex_digits() {
        assert!(valid_digest(&format!("sha256:{}", hex64('a'))));
        assert!(valid_digest(&format!(
            "sha256:{}",
            "0123456789abcdef".repeat(4)
        )));
        for bad in [
            String::new(),
            hex64('a'),
            format!("sha256:{}", hex64('A')),
            format!("sha256:{}", &hex64('a')[..63]),
            format!("sha256:{}a", hex64('a')),
            format!("sha256:{}", hex64('g')),
            format!("sha512:{}", hex64('a')),
            format!("SHA256:{}", hex64('a')),
            format!("sha256 {}", hex64('a')),
        ] {
            assert!(!valid_digest(&bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn malformed_digests_are_digest_invalid_whatever_their_form() {
        assert!(check_digest(&format!("sha256:{}", hex64('0'))).is_ok());
        let err = check_digest("sha512:abcd").unwrap_err();
        assert_eq!(err.code, Code::DigestInvalid);
        assert_eq!(err.code.as_str(), "DIGEST_INVALID");
        assert!(err.message.contains("malformed"), "{}", err.message);
        assert_eq!(
            err.detail,
            Some(serde_json::json!({ "digest": "sha512:abcd" }))
        );
        let err = check_digest("abcd").unwrap_err();
        assert_eq!(err.code, Code::DigestInvalid);
        assert_eq!(err.detail, Some(serde_json::json!({ "digest": "abcd" })));
    }

    #[test]
    fn digest_of_is_the_sha256_of_the_bytes() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest_of(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(valid_digest(&digest_of(b"anything")));
    }

    #[test]
    fn free_text_becomes_a_valid_name_component() {
        for (input, want) in [
            ("alice", "alice"),
            ("Alice", "alice"),
            ("John Smith", "john-smith"),
            ("a..b__c", "a-b-c"),
            ("--x--", "x"),
            ("a  -  b", "a-b"),
            ("user@example.org", "user-example-org"),
            ("Ünïcode", "n-code"),
            ("", "x"),
            ("!!!", "x"),
            ("R2D2", "r2d2"),
        ] {
            let got = sanitize_component(input);
            assert_eq!(got, want, "{input:?}");
            assert!(valid_name(&got), "{input:?} -> {got:?}");
            assert!(!got.contains('/'));
        }
    }
}
