//! Peer IDs: the short, copyable name of a key pair, as Syncthing's device IDs are.
//!
//! An ID is the first 20 bytes of the SHA-256 of the peer's SubjectPublicKeyInfo (the DER of
//! its public key as its certificate carries it), in base32 (RFC 4648, upper case, no
//! padding: 32 characters), followed by one Luhn mod 32 check character, and written as three
//! groups of 11 joined by dashes. The check character catches any one mistyped character and
//! most swaps of two neighbours. 160 bits leave nobody able to make a key with a chosen ID.

use std::fmt;
use std::str::FromStr;

/// Bytes of the digest an ID stands for.
pub const ID_BYTES: usize = 20;

/// Characters of an ID written out, without its dashes: the base32 digest and the check.
const ID_CHARS: usize = 33;

/// Characters between two dashes in an ID as it is printed.
const GROUP: usize = 11;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Who a peer is: the digest of its public key. Equal IDs mean the same key pair.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId([u8; ID_BYTES]);

impl PeerId {
    /// The ID of a public key, given as its SubjectPublicKeyInfo DER.
    pub fn of_public_key(spki_der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut bytes = [0; ID_BYTES];
        bytes.copy_from_slice(&digest.as_ref()[..ID_BYTES]);
        Self(bytes)
    }

    /// The digest, as the key proofs of PROTOCOL.md §5.7 take it.
    pub fn as_bytes(&self) -> &[u8; ID_BYTES] {
        &self.0
    }
}

/// Why a text is not an ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdError {
    #[error("a peer ID has {ID_CHARS} letters and digits 2-7 (dashes aside), not {0}")]
    Length(usize),
    #[error("{0:?} cannot be in a peer ID (letters A-Z and digits 2-7 only)")]
    Character(char),
    #[error("the peer ID's check character does not match: a character is mistyped")]
    Check,
}

impl FromStr for PeerId {
    type Err = PeerIdError;

    /// Takes an ID with or without its dashes, in either case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut values = Vec::with_capacity(ID_CHARS);
        for c in text.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let upper = c.to_ascii_uppercase();
            let value = ALPHABET
                .iter()
                .position(|a| char::from(*a) == upper)
                .ok_or(PeerIdError::Character(c))?;
            values.push(value as u8);
        }
        if values.len() != ID_CHARS {
            return Err(PeerIdError::Length(values.len()));
        }
        let (digits, check) = values.split_at(ID_CHARS - 1);
        if luhn32(digits) != check[0] {
            return Err(PeerIdError::Check);
        }
        let mut bytes = [0; ID_BYTES];
        let (mut acc, mut bits, mut at) = (0u32, 0, 0);
        for value in digits {
            acc = (acc << 5) | u32::from(*value);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes[at] = (acc >> bits) as u8;
                at += 1;
            }
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut values = Vec::with_capacity(ID_CHARS);
        let (mut acc, mut bits) = (0u32, 0);
        for byte in self.0 {
            acc = (acc << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                values.push(((acc >> bits) & 31) as u8);
            }
        }
        values.push(luhn32(&values));
        for (index, value) in values.iter().enumerate() {
            if index > 0 && index % GROUP == 0 {
                f.write_str("-")?;
            }
            write!(f, "{}", char::from(ALPHABET[usize::from(*value)]))?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl serde::Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The Luhn mod 32 check value of base32 digit values, as Syncthing computes it: from the
/// left, every second digit doubled, each product's two base-32 digits added.
fn luhn32(values: &[u8]) -> u8 {
    let mut factor = 1;
    let mut sum = 0;
    for value in values {
        let addend = factor * u32::from(*value);
        factor = if factor == 1 { 2 } else { 1 };
        sum += addend / 32 + addend % 32;
    }
    ((32 - sum % 32) % 32) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SubjectPublicKeyInfo of the Ed25519 public key 00 01 .. 1f, and its ID: the worked
    /// example of PROTOCOL.md §5.9.
    const SPKI_HEX: &str =
        "302a300506032b6570032100000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn spki() -> Vec<u8> {
        (0..SPKI_HEX.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&SPKI_HEX[at..at + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_worked_example_is_pinned() {
        let id = PeerId::of_public_key(&spki());
        assert_eq!(id.to_string(), EXAMPLE_ID);
        assert_eq!(EXAMPLE_ID.parse::<PeerId>().unwrap(), id);
    }

    const EXAMPLE_ID: &str = "SQEEK6XP2BY-45QJHYH4YKO-MTBBQ22G5J2";

    #[test]
    fn ids_read_back_in_any_case_with_or_without_dashes() {
        let id = PeerId::of_public_key(b"some key");
        let text = id.to_string();
        assert_eq!(text.len(), ID_CHARS + 2);
        assert_eq!(text.parse::<PeerId>().unwrap(), id);
        assert_eq!(
            text.replace('-', "")
                .to_lowercase()
                .parse::<PeerId>()
                .unwrap(),
            id
        );
    }

    #[test]
    fn a_mistyped_character_is_caught() {
        let text = PeerId::of_public_key(b"some key")
            .to_string()
            .replace('-', "");
        for at in 0..text.len() {
            let mut typo: Vec<char> = text.chars().collect();
            typo[at] = if typo[at] == 'A' { 'B' } else { 'A' };
            let typo: String = typo.into_iter().collect();
            assert_eq!(typo.parse::<PeerId>(), Err(PeerIdError::Check), "{typo}");
        }
        assert_eq!("ABC".parse::<PeerId>(), Err(PeerIdError::Length(3)));
        assert_eq!(
            format!("{}1", &text[1..]).parse::<PeerId>(),
            Err(PeerIdError::Character('1'))
        );
    }
}
