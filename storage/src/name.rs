//! `PartName`: the one place part names are validated.
//!
//! A name arrives from a remote peer or a command line and ends up as a file name under a
//! directory the user chose, so every rule here exists to keep that file inside that directory
//! and readable by a person: no separators, no `.`/`..`, no hidden files, no control or
//! bidirectional-override characters that would disguise what a listing shows.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A validated part name: UTF-8, 1..=[`PartName::MAX_LEN`] bytes, safe to use as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartName(String);

/// Which rule a rejected name broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is {len} bytes long, the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("name is not valid UTF-8")]
    NotUtf8,
    #[error("name contains the path separator {0:?}")]
    Separator(char),
    #[error("name contains a NUL byte")]
    Nul,
    #[error("name contains the control character U+{0:04X}")]
    Control(u32),
    #[error("name contains the bidirectional formatting character U+{0:04X}")]
    Bidi(u32),
    #[error("name is {0:?}, which means a directory")]
    DotName(String),
    #[error("name starts with '.', which would hide the exported file")]
    LeadingDot,
}

impl PartName {
    /// Longest name accepted, in bytes; leaves room for the `_recebida` suffix and a temp
    /// prefix within the usual 255-byte file name limit.
    pub const MAX_LEN: usize = 200;

    /// Validates `name`.
    ///
    /// # Errors
    /// The [`NameError`] naming the first rule `name` breaks.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        check(&name)?;
        Ok(Self(name))
    }

    /// Validates raw bytes, as read from a file name or the wire.
    ///
    /// # Errors
    /// [`NameError::NotUtf8`], or the rule the decoded text breaks.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
        let text = std::str::from_utf8(bytes).map_err(|_| NameError::NotUtf8)?;
        Self::new(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a file's chunk: its hash, so equal chunks are one part.
    pub fn chunk(hash: &crate::PartHash) -> Self {
        Self(format!("{CHUNK_PREFIX}{hash}"))
    }

    /// The hash a chunk's name promises: `Some` only for the exact form [`PartName::chunk`]
    /// makes (lower-case hex), so a name is a chunk's in one way only.
    pub fn chunk_hash(&self) -> Option<crate::PartHash> {
        let hex = self.0.strip_prefix(CHUNK_PREFIX)?;
        let hash: crate::PartHash = hex.parse().ok()?;
        (hash.to_hex() == hex).then_some(hash)
    }

    /// Whether this is a chunk's name. The command line lists chunks only when asked to.
    pub fn is_chunk(&self) -> bool {
        self.chunk_hash().is_some()
    }

    /// The file name a part is exported under.
    pub fn exported_file_name(&self) -> String {
        format!("{}{}", self.0, EXPORT_SUFFIX)
    }
}

/// How chunk names start; a name of this form with a valid hash is a chunk's.
pub const CHUNK_PREFIX: &str = "b3-";

/// Appended to every exported part, as the original example did.
pub const EXPORT_SUFFIX: &str = "_recebida";

fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > PartName::MAX_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: PartName::MAX_LEN,
        });
    }
    if name == "." || name == ".." {
        return Err(NameError::DotName(name.to_owned()));
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    for ch in name.chars() {
        match ch {
            '/' | '\\' => return Err(NameError::Separator(ch)),
            '\0' => return Err(NameError::Nul),
            c if c.is_control() => return Err(NameError::Control(c as u32)),
            c if is_bidi_format(c) => return Err(NameError::Bidi(c as u32)),
            _ => {}
        }
    }
    Ok(())
}

/// Marks, embeddings, overrides and isolates: invisible characters that reorder how a name
/// is displayed, so `evil\u{202E}txt.exe` would look like `evilexe.txt`.
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for PartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl FromStr for PartName {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl AsRef<str> for PartName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for PartName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PartName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "part2.txt",
            "a",
            "relatório final.pdf",
            "x..y",
            "日本語",
            "a b",
        ] {
            assert_eq!(PartName::new(name).unwrap().as_str(), name);
        }
        assert!(PartName::new("é".repeat(100)).is_ok());
    }

    #[test]
    fn says_which_rule_failed() {
        let cases: [(&str, NameError); 12] = [
            ("", NameError::Empty),
            (".", NameError::DotName(".".into())),
            ("..", NameError::DotName("..".into())),
            (".hidden", NameError::LeadingDot),
            ("../x", NameError::LeadingDot),
            ("/etc/x", NameError::Separator('/')),
            ("a/b", NameError::Separator('/')),
            ("a\\b", NameError::Separator('\\')),
            ("a\0b", NameError::Nul),
            ("a\nb", NameError::Control(0x0a)),
            ("a\u{7f}", NameError::Control(0x7f)),
            ("evil\u{202E}txt", NameError::Bidi(0x202e)),
        ];
        for (name, expected) in cases {
            assert_eq!(PartName::new(name), Err(expected), "{name:?}");
        }
        assert_eq!(
            PartName::new("x".repeat(201)),
            Err(NameError::TooLong { len: 201, max: 200 })
        );
        assert_eq!(PartName::from_bytes(b"\xff"), Err(NameError::NotUtf8));
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<PartName>("\"../etc/passwd\"").is_err());
        let name: PartName = serde_json::from_str("\"ok.bin\"").unwrap();
        assert_eq!(name.as_str(), "ok.bin");
    }

    proptest! {
        #[test]
        fn a_valid_name_is_one_plain_path_component(name in any::<String>()) {
            if let Ok(name) = PartName::new(name) {
                let exported = name.exported_file_name();
                let mut components = std::path::Path::new(&exported).components();
                prop_assert!(matches!(components.next(), Some(std::path::Component::Normal(_))));
                prop_assert!(components.next().is_none());
            }
        }
    }
}
