//! The documented form of a job's command against the splitter it states.

use super::{COMMAND_PATTERN, split_command};

/// The pattern and the splitter agree on every string of the characters that matter, up to
/// six of them.
#[test]
fn the_command_pattern_states_what_splits() {
    let pattern = regex::Regex::new(COMMAND_PATTERN).unwrap();
    let alphabet = ['a', ' ', '\t', '\n', '\'', '"', '\\', '#'];
    let mut words = vec![String::new()];
    let mut tried = 0;
    for _ in 0..6 {
        let mut next = Vec::new();
        for w in &words {
            for c in alphabet {
                let mut x = w.clone();
                x.push(c);
                next.push(x);
            }
        }
        for w in &next {
            tried += 1;
            assert_eq!(
                pattern.is_match(w),
                split_command(w).is_ok(),
                "{w:?}: the pattern and the splitter disagree"
            );
        }
        words = next;
    }
    assert!(tried > 290_000);
    for ok in [
        "sh -c 'echo one; echo two'",
        "echo \"a b\" \\\n c",
        "\r",
        "# x\nls",
    ] {
        assert!(pattern.is_match(ok), "{ok:?}");
    }
    for bad in ["", "   ", "# only a comment", "echo 'open", "\\\n"] {
        assert!(!pattern.is_match(bad), "{bad:?}");
    }
}
