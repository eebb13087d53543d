//! What the store may hold after a power cut, name by name: the state it was acknowledged in,
//! or, for a name whose last operation was cut short, any state that operation went through.
//!
//! Every name's bytes come from the name and a version number alone, so a listing can be
//! matched to the version it holds without keeping any bytes.

use std::collections::{BTreeMap, BTreeSet};

use storage::PartHash;

/// Files larger than this are stored as chunks of this size plus a manifest.
pub const CHUNK: u64 = 1024 * 1024;

/// The size classes of the parts and files stored: a part inline in sled's index, one near
/// its inline limit, one in a pack, and files of three or four chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Kib,
    Small,
    Mib,
    Chunked,
}

impl Class {
    pub const ALL: [Self; 4] = [Self::Kib, Self::Small, Self::Mib, Self::Chunked];

    fn tag(self) -> &'static str {
        match self {
            Self::Kib => "kib",
            Self::Small => "15k",
            Self::Mib => "mib",
            Self::Chunked => "multi",
        }
    }

    fn of(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|class| name.split('-').nth(1) == Some(class.tag()))
            .unwrap_or_else(|| panic!("{name} is not a ledger name"))
    }

    /// Whether the store holds it as chunks and a manifest.
    pub fn is_chunked(self) -> bool {
        self == Self::Chunked
    }

    /// Whether sled keeps its body in a pack (past its 16 KiB inline limit).
    pub fn is_packed(self) -> bool {
        matches!(self, Self::Mib | Self::Chunked)
    }
}

/// The name of the `index`-th part of `class` first stored in `cycle`.
pub fn name(cycle: usize, class: Class, index: usize) -> String {
    format!("c{cycle:02}-{}-{index}", class.tag())
}

pub fn class(name: &str) -> Class {
    Class::of(name)
}

/// The bytes of version `version` of `name`.
fn content(name: &str, version: u32) -> Vec<u8> {
    let seed = PartHash::of(format!("{name}/{version}").as_bytes());
    let mut rng = fastrand::Rng::with_seed(u64::from_le_bytes(
        seed.as_bytes()[..8].try_into().expect("8 bytes"),
    ));
    let len = match Class::of(name) {
        Class::Kib => 1024,
        Class::Small => 15_000,
        Class::Mib => CHUNK as usize,
        Class::Chunked => 2 * CHUNK as usize + rng.usize(1..=2 * CHUNK as usize),
    };
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    bytes
}

/// How a version shows in `list --json`: its hash and size, and chunks for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub hash: String,
    pub size: u64,
    pub parts: Option<u64>,
}

/// One version of a name, as the checks need it.
#[derive(Debug, Clone)]
struct Version {
    listed: Listed,
    /// The chunks it is stored as, if a file.
    chunks: Vec<String>,
}

impl Version {
    fn of(name: &str, bytes: &[u8]) -> Self {
        let size = bytes.len() as u64;
        let chunked = Class::of(name).is_chunked();
        let chunks = bytes
            .chunks(CHUNK as usize)
            .filter(|_| chunked)
            .map(|chunk| format!("{}{}", storage::CHUNK_PREFIX, PartHash::of(chunk).to_hex()))
            .collect();
        Self {
            listed: Listed {
                hash: PartHash::of(bytes).to_hex(),
                size,
                parts: chunked.then(|| size.div_ceil(CHUNK)),
            },
            chunks,
        }
    }
}

/// One name's versions sent so far, and its possible states: `None` for absent, `Some(v)`
/// for version `v`.
#[derive(Debug, Clone)]
struct Known {
    possible: BTreeSet<Option<u32>>,
    versions: Vec<Version>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    names: BTreeMap<String, Known>,
    /// Chunks of files whose removal was acknowledged since the last check: they must be gone.
    released: BTreeSet<String>,
}

impl Ledger {
    fn known(&mut self, name: &str) -> &mut Known {
        self.names.entry(name.to_owned()).or_insert_with(|| Known {
            possible: BTreeSet::from([None]),
            versions: Vec::new(),
        })
    }

    /// A new version of `name` is on its way; returns its bytes.
    pub fn sending(&mut self, name: &str) -> Vec<u8> {
        let known = self.known(name);
        let version = known.versions.len() as u32;
        let bytes = content(name, version);
        known.versions.push(Version::of(name, &bytes));
        known.possible.insert(Some(version));
        bytes
    }

    /// The latest version sent of `name` was acknowledged stored.
    pub fn stored(&mut self, name: &str) {
        let known = self.known(name);
        let latest = known.versions.len() as u32 - 1;
        known.possible = BTreeSet::from([Some(latest)]);
    }

    /// A removal of `name` is on its way.
    pub fn removing(&mut self, name: &str) {
        self.known(name).possible.insert(None);
    }

    /// The removal of `name` was acknowledged: it is gone, with the chunks of what it held.
    pub fn removed(&mut self, name: &str) {
        let known = self.known(name);
        let chunks: Vec<String> = known
            .possible
            .iter()
            .flatten()
            .flat_map(|&version| known.versions[version as usize].chunks.clone())
            .collect();
        known.possible = BTreeSet::from([None]);
        self.released.extend(chunks);
    }

    /// The version `name` surely holds now, if it surely holds one.
    pub fn holds(&self, name: &str) -> Option<u32> {
        let known = self.names.get(name)?;
        match known.possible.iter().collect::<Vec<_>>()[..] {
            [Some(version)] => Some(*version),
            _ => None,
        }
    }

    /// Names surely held, with their versions.
    pub fn held(&self) -> Vec<(String, u32)> {
        self.names
            .keys()
            .filter_map(|name| Some((name.clone(), self.holds(name)?)))
            .collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// Whether `name` may be in `state` after the cut.
    pub fn allows(&self, name: &str, state: Option<u32>) -> bool {
        self.names
            .get(name)
            .is_some_and(|known| known.possible.contains(&state))
    }

    /// What `name` may hold, as text for a report.
    pub fn expected(&self, name: &str) -> String {
        let Some(known) = self.names.get(name) else {
            return "nothing".into();
        };
        let states: Vec<String> = known
            .possible
            .iter()
            .map(|state| state.map_or("absent".into(), |version| format!("version {version}")))
            .collect();
        states.join(" or ")
    }

    /// Which version `listed` is of `name`, if any of those sent.
    pub fn version_of(&self, name: &str, listed: &Listed) -> Option<u32> {
        let known = self.names.get(name)?;
        let found = known.versions.iter().position(|v| v.listed == *listed)?;
        Some(found as u32)
    }

    /// The chunks version `version` of `name` is stored as (none for a part).
    pub fn chunks(&self, name: &str, version: u32) -> &[String] {
        self.names
            .get(name)
            .and_then(|known| known.versions.get(version as usize))
            .map_or(&[], |version| &version.chunks)
    }

    pub fn released(&self) -> &BTreeSet<String> {
        &self.released
    }

    /// After a check: `name` holds `state`, from now on the only state it may be in.
    pub fn settle(&mut self, name: &str, state: Option<u32>) {
        self.known(name).possible = BTreeSet::from([state]);
    }

    /// After a check: the released chunks were all looked for.
    pub fn checked_releases(&mut self) {
        self.released.clear();
    }
}
