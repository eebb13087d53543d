//! The `Range` header (RFC 9110, section 14): one range of bytes, as `curl -r`, `wget -c` and
//! browsers resuming a download send it. Several ranges at once, other units and anything
//! malformed are ignored, as the RFC allows, and the whole file is served.

use std::ops::Range;

/// What to send of a representation of some size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// All of it, `200`.
    Whole,
    /// These bytes, `206` with `Content-Range`.
    Part(Range<u64>),
    /// None of the bytes asked for exist, `416`.
    Unsatisfiable,
}

/// Reads `header` (the value of `Range`, if any) against a representation of `size` bytes.
pub(crate) fn wanted(header: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |text: &str| {
        (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
            .then(|| text.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (first.trim(), last.trim()) {
        // `bytes=-n`: the last n bytes.
        ("", suffix) => match number(suffix) {
            None => Wanted::Whole,
            Some(0) => Wanted::Unsatisfiable,
            Some(_) if size == 0 => Wanted::Unsatisfiable,
            Some(suffix) => Wanted::Part(size - suffix.min(size)..size),
        },
        // `bytes=a-b` and `bytes=a-`: from a to b, or to the end.
        (first, last_text) => {
            let (Some(start), last) = (number(first), number(last_text)) else {
                return Wanted::Whole;
            };
            let end = match last {
                Some(last) if last < start => return Wanted::Whole,
                Some(last) => last.saturating_add(1).min(size),
                None if !last_text.is_empty() => return Wanted::Whole,
                None => size,
            };
            if start < size {
                Wanted::Part(start..end)
            } else {
                Wanted::Unsatisfiable
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_are_served_as_asked() {
        let part = |range: Range<u64>| Wanted::Part(range);
        assert_eq!(wanted(Some("bytes=0-99"), 1000), part(0..100));
        assert_eq!(wanted(Some("bytes=990-2000"), 1000), part(990..1000));
        assert_eq!(wanted(Some("bytes=500-"), 1000), part(500..1000));
        assert_eq!(wanted(Some("bytes=-10"), 1000), part(990..1000));
        assert_eq!(wanted(Some("bytes=-5000"), 1000), part(0..1000));
        assert_eq!(wanted(Some("bytes=999-999"), 1000), part(999..1000));
        assert_eq!(wanted(Some(" bytes=1-2 "), 1000), part(1..3));
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(wanted(Some("bytes=1000-"), 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=1000-1001"), 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 1000), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-1"), 0), Wanted::Unsatisfiable);
    }

    #[test]
    fn anything_else_gets_the_whole() {
        for header in [
            None,
            Some("bytes=5-1"),
            Some("bytes=0-1,5-6"),
            Some("items=0-1"),
            Some("bytes=-"),
            Some("bytes=a-b"),
            Some("bytes=+1-2"),
            Some("bytes 0-1"),
            Some(""),
        ] {
            assert_eq!(wanted(header, 1000), Wanted::Whole, "{header:?}");
        }
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let max = u64::MAX.to_string();
        assert_eq!(
            wanted(Some(&format!("bytes=0-{max}")), 10),
            Wanted::Part(0..10)
        );
        assert_eq!(
            wanted(Some(&format!("bytes={max}-")), 10),
            Wanted::Unsatisfiable
        );
        assert_eq!(
            wanted(Some(&format!("bytes=-{max}")), 10),
            Wanted::Part(0..10)
        );
    }
}
