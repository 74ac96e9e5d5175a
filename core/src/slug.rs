//! One slug function for every name derived from free text: environment
//! names (netns, Docker), test environments, campaign test names.

/// `text` as a name safe in paths, network namespace and container names:
/// ASCII letters (lowercased) and digits kept, `-` kept, every other
/// character a `-`; no `-` at either end; at most `max_len` characters.
///
/// ```
/// assert_eq!(splitbrain_core::slug::slug("Kill:ZK + pause", 40), "kill-zk---pause");
/// assert_eq!(splitbrain_core::slug::slug("--abc-def", 4), "abc");
/// ```
pub fn slug(text: &str, max_len: usize) -> String {
    let full: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let cut: String = full.trim_matches('-').chars().take(max_len).collect();
    cut.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_keep_letters_digits_and_dashes_only() {
        assert_eq!(slug("incident-2020_acks.1", 100), "incident-2020-acks-1");
        assert_eq!(
            slug("pause:kafka+kill:kafka", 100),
            "pause-kafka-kill-kafka"
        );
        assert_eq!(slug("Ünïcode Name", 100), "n-code-name");
        assert_eq!(slug("abc-def", 4), "abc");
        assert_eq!(slug("---", 10), "");
        assert_eq!(slug("", 10), "");
    }
}
