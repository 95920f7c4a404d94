//! Shell-style name patterns: `*` matches any run of characters, `?` one.
//! Used where the config names files (rule files) or processes (the http
//! collector's executables, units and containers).

/// Whether `name` matches `pattern` whole.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_as_the_shell_does() {
        assert!(matches("*.yml", "node.yml"));
        assert!(!matches("*.yml", "node.yaml"));
        assert!(matches("rules-?.y*ml", "rules-1.yaml"));
        assert!(matches("*", ""));
        assert!(!matches("a*b", "ac"));
        assert!(matches("/usr/*/nginx", "/usr/sbin/nginx"));
    }
}
