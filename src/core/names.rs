//! Names made from free text for places with a strict grammar: a repository name's component
//! from a login or an image name, a registry namespace from a login.

/// The most bytes a component keeps: two of them and a `/` stay well inside a repository
/// name's 255.
const MAX_COMPONENT: usize = 100;

/// Lower case ASCII letters and digits, every run of anything else one `-`, none at either end,
/// at most 100 bytes; `x` when nothing is left. Logins that differ only in case, `.`, `_` or
/// `-` give the same component (which is why a login's component is its namespace, unique).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if out.len() >= MAX_COMPONENT {
            break;
        }
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "x".to_owned()
    } else {
        out.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_that_differ_in_punctuation_or_case_meet() {
        assert_eq!(slug("Alice.Smith"), "alice-smith");
        assert_eq!(slug("alice_smith"), "alice-smith");
        assert_eq!(slug("alice--smith-"), "alice-smith");
        assert_eq!(slug("..."), "x");
        assert_eq!(slug(&"a".repeat(300)).len(), MAX_COMPONENT);
        assert!(!slug(&format!("{}.b", "a".repeat(99))).ends_with('-'));
    }
}
