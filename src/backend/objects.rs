//! Content-addressed objects: `blobs/objects/<xx>/<hash>`, each stored
//! once under the BLAKE3 hash of its bytes, read-only, never rewritten.
//!
//! This is the storage side of the blob store ([`crate::blob`] holds the
//! manifests that name objects): how a new object is added and how
//! unreferenced ones go. [`ObjectWriter`] is what a [`Backend`] gives for
//! adding objects:
//!
//! * [`PutEach`], every backend's default: each object is made durable by
//!   its own create-only [`Backend::put_if_absent`] (small files, read
//!   into memory) or, for a large one, hashed first and then streamed up
//!   through [`Backend::create`], one at a time, so memory stays bounded;
//! * the local directory's batched writer (`backend::local`), which writes
//!   objects into `blobs/incoming/` and makes a batch durable with one
//!   `syncfs`, renames, and a second `syncfs`, instead of one fsync per
//!   file (a blob store holds hundreds of thousands of small files).
//!
//! Either way an object under its final name always has its whole
//! content, even after a power loss.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use super::{Backend, Put};
use crate::error::{Error, IoContext, Result};

/// Where objects live, relative to the repository.
pub const OBJECTS: &str = "blobs/objects/";

/// A BLAKE3 hash of an object's content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// The object name of `hash` relative to the repository:
/// `blobs/objects/<first two hex digits>/<64 hex digits>`.
pub fn object_name(hash: &Hash) -> String {
    let hex = hash.to_string();
    format!("{OBJECTS}{}/{hex}", &hex[..2])
}

/// The hash an object name `blobs/objects/<xx>/<hash>` stands for; `None`
/// for any other name (not ours: left alone).
pub fn hash_of_name(name: &str) -> Option<Hash> {
    name.strip_prefix(OBJECTS)
        .and_then(|rest| rest.split_once('/'))
        .filter(|(dir, hex)| hex.get(..2) == Some(*dir))
        .and_then(|(_, hex)| Hash::from_hex(hex))
}

/// What [`ObjectWriter::put`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The hash of the content.
    pub hash: Hash,
    /// Its size in bytes.
    pub size: u64,
    /// Whether the object is new to the store (`false`: equal content was
    /// stored before and was left as it was).
    pub new: bool,
}

/// Adds objects to a repository's object store. Safe to call from several
/// threads at once. An object is durable under its name when
/// [`ObjectWriter::commit`] returns (some writers make each durable when
/// `put` returns already); dropped before that, what was not committed is
/// discarded.
pub trait ObjectWriter: Send + Sync {
    /// Copies `src` (named `shown` in errors) into the store unless an
    /// object with its content exists. `buf` is the copy buffer.
    fn put(&self, src: &mut File, shown: &Path, buf: &mut [u8]) -> Result<Stored>;

    /// Makes every object put so far durable under its name.
    fn commit(&self) -> Result<()>;
}

/// In a store that makes objects durable one by one, a file up to this
/// size is read into memory and sent with one create-only put; a larger
/// one is hashed first, then streamed up (one at a time).
pub const SMALL_OBJECT: u64 = 8 << 20;

/// The default [`ObjectWriter`]: each object made durable by its own
/// create-only write (see the module doc). Memory: at most one
/// [`SMALL_OBJECT`] per calling thread plus one streamed upload.
pub struct PutEach<'b, B: Backend + ?Sized> {
    backend: &'b B,
    large: Mutex<()>,
}

impl<'b, B: Backend + ?Sized> PutEach<'b, B> {
    /// A writer of objects into `backend`.
    pub fn new(backend: &'b B) -> Self {
        PutEach {
            backend,
            large: Mutex::new(()),
        }
    }
}

impl<B: Backend + ?Sized> ObjectWriter for PutEach<'_, B> {
    fn put(&self, src: &mut File, shown: &Path, buf: &mut [u8]) -> Result<Stored> {
        let backend = self.backend;
        let len = src.metadata().at(shown)?.len();
        if len <= SMALL_OBJECT {
            let data = read_small(src, len, shown)?;
            let hash = Hash::of(&data);
            let size = data.len() as u64;
            let name = object_name(&hash);
            let new = match backend.put_if_absent(&name, &data)? {
                Put::Created => true,
                // Stored before: keep it unless it is damaged (another size).
                Put::AlreadyExists if backend.size(&name)? == Some(size) => false,
                Put::AlreadyExists => {
                    backend.delete(&name)?;
                    backend.put_if_absent(&name, &data)? == Put::Created
                }
            };
            crate::failpoint::hit("backup:blob-stored");
            return Ok(Stored { hash, size, new });
        }
        // Hash first (the name is the hash), then stream it up, checking
        // that what went up hashes the same.
        let (hash, size) = hash_copy(src, None, buf, shown, Path::new(""))?;
        let name = object_name(&hash);
        match backend.size(&name)? {
            Some(s) if s == size => {
                return Ok(Stored {
                    hash,
                    size,
                    new: false,
                });
            }
            Some(_) => {
                backend.delete(&name)?;
            }
            None => {}
        }
        let _one_at_a_time = self
            .large
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        src.seek(SeekFrom::Start(0)).at(shown)?;
        let mut up = backend.create(&name)?;
        let (again, n) = hash_copy(src, Some(&mut up), buf, shown, Path::new(&name))?;
        if again != hash || n != size {
            // Dropped uncommitted: nothing appears under the name.
            return Err(changed_meanwhile(shown));
        }
        up.commit()?;
        crate::failpoint::hit("backup:blob-stored");
        Ok(Stored {
            hash,
            size,
            new: true,
        })
    }

    fn commit(&self) -> Result<()> {
        Ok(())
    }
}

/// Removes every object of `backend` not in `keep`, from one listing;
/// returns (objects, bytes) removed. Names that are not objects of ours
/// are left alone.
pub fn sweep<B: Backend + ?Sized>(backend: &B, keep: &HashSet<Hash>) -> Result<(u64, u64)> {
    let (mut n, mut bytes) = (0u64, 0u64);
    for entry in backend.list(OBJECTS, true)? {
        let Some(hash) = hash_of_name(&entry.name) else {
            continue;
        };
        if keep.contains(&hash) {
            continue;
        }
        crate::interrupt::check()?;
        backend.delete(&entry.name)?;
        n += 1;
        bytes += entry.size;
    }
    Ok((n, bytes))
}

/// Reads all of `src`, which `fstat` said is `len` bytes (at most
/// [`SMALL_OBJECT`]); a file that grew or shrank meanwhile is an error.
fn read_small(src: &mut File, len: u64, shown: &Path) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(len.min(SMALL_OBJECT) as usize);
    Read::by_ref(src)
        .take(SMALL_OBJECT + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(shown, e))?;
    crate::interrupt::check()?;
    if data.len() as u64 != len {
        return Err(changed_meanwhile(shown));
    }
    Ok(data)
}

/// A file whose content changed while it was read into the store.
pub(crate) fn changed_meanwhile(shown: &Path) -> Error {
    Error::Source(format!(
        "{} changed while it was being backed up (ZODB never rewrites a blob file); \
         nothing was stored for it. Run the backup again",
        shown.display()
    ))
}

/// Hashes `src`, writing it to `out` if given; returns (hash, bytes).
pub fn hash_copy(
    src: &mut dyn Read,
    mut out: Option<&mut dyn Write>,
    buf: &mut [u8],
    shown: &Path,
    out_path: &Path,
) -> Result<(Hash, u64)> {
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    loop {
        let k = match src.read(buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(shown, e).with_pos(n)),
        };
        h.update(&buf[..k]);
        if let Some(o) = out.as_mut() {
            o.write_all(&buf[..k]).at(out_path)?;
        }
        n += k as u64;
        crate::interrupt::check()?;
    }
    Ok((Hash(*h.finalize().as_bytes()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = Hash::of(b"x");
        assert_eq!(Hash::from_hex(&h.to_string()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
    }

    proptest::proptest! {
        /// Names listed by an object store are anyone's: any name gives a
        /// hash or `None`, never a panic; an object's own name its hash.
        #[test]
        fn any_listed_name_gives_a_hash_or_none_never_a_panic(name in "\\PC{0,90}") {
            let _ = hash_of_name(&name);
            let h = Hash::of(name.as_bytes());
            proptest::prop_assert_eq!(hash_of_name(&object_name(&h)), Some(h));
        }
    }
}
