//! `PartName`: the one place part names are validated.
//!
//! A name arrives from a remote peer or a command line and ends up as a file name under a
//! directory the user chose, so every rule here exists to keep that file inside that directory
//! and readable by a person: no separators, no `.`/`..`, no hidden files, no control,
//! bidirectional-override or invisible characters that would disguise what a listing shows.

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
    #[error("name contains the invisible character U+{0:04X}")]
    Invisible(u32),
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
}

/// How chunk names start; a name of this form with a valid hash is a chunk's.
pub const CHUNK_PREFIX: &str = "b3-";

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
            c if is_invisible(c) => return Err(NameError::Invisible(c as u32)),
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

/// Characters that draw nothing, so `a\u{200B}.txt` would list exactly like `a.txt`: Unicode's
/// default-ignorable code points (zero-width spaces and joiners, the soft hyphen, the byte
/// order mark, Hangul fillers, invisible operators, variation selectors, tags, musical
/// formatting) and the blank braille pattern, which renders as a space.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
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

    /// One character of each invisible class, at the start, inside and at the end of a name.
    #[test]
    fn refuses_invisible_characters() {
        let invisible = [
            ('\u{200B}', "zero-width space"),
            ('\u{200C}', "zero-width non-joiner"),
            ('\u{200D}', "zero-width joiner"),
            ('\u{00AD}', "soft hyphen"),
            ('\u{FEFF}', "byte order mark"),
            ('\u{3164}', "Hangul filler"),
            ('\u{115F}', "Hangul choseong filler"),
            ('\u{1160}', "Hangul jungseong filler"),
            ('\u{FFA0}', "halfwidth Hangul filler"),
            ('\u{2800}', "braille blank"),
            ('\u{2060}', "word joiner"),
            ('\u{2064}', "invisible plus"),
            ('\u{206F}', "nominal digit shapes"),
            ('\u{034F}', "combining grapheme joiner"),
            ('\u{180E}', "Mongolian vowel separator"),
            ('\u{17B4}', "Khmer vowel inherent aq"),
            ('\u{17B5}', "Khmer vowel inherent aa"),
            ('\u{FE00}', "variation selector 1"),
            ('\u{FE0F}', "variation selector 16"),
            ('\u{E0100}', "variation selector 17"),
            ('\u{E01EF}', "variation selector 256"),
            ('\u{E0001}', "language tag"),
            ('\u{E0041}', "tag latin capital a"),
            ('\u{E007F}', "cancel tag"),
            ('\u{1D173}', "musical symbol begin beam"),
            ('\u{1D17A}', "musical symbol end phrase"),
        ];
        for (c, what) in invisible {
            for name in [
                format!("{c}a.txt"),
                format!("a{c}.txt"),
                format!("a.txt{c}"),
            ] {
                assert_eq!(
                    PartName::new(name.as_str()),
                    Err(NameError::Invisible(c as u32)),
                    "{what}: {name:?}"
                );
            }
        }
        assert_eq!(
            NameError::Invisible(0x200B).to_string(),
            "name contains the invisible character U+200B"
        );
        // U+200E/F and U+2066..U+2069 are invisible too, and refused as bidi controls.
        assert_eq!(PartName::new("a\u{200E}"), Err(NameError::Bidi(0x200e)));
        assert_eq!(PartName::new("a\u{2067}"), Err(NameError::Bidi(0x2067)));
        // Visible neighbours of those ranges stay allowed.
        for name in [
            "\u{2801}",
            "\u{3165}",
            "\u{2010}",
            "\u{FE10}",
            "\u{1D172}",
            "\u{E1000}x",
        ] {
            assert!(PartName::new(name).is_ok(), "{name:?}");
        }
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
                let exported = crate::ExportOptions::new("_recebida").unwrap().file_name(&name);
                let mut components = std::path::Path::new(&exported).components();
                prop_assert!(matches!(components.next(), Some(std::path::Component::Normal(_))));
                prop_assert!(components.next().is_none());
            }
        }
    }
}
