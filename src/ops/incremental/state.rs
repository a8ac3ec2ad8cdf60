//! The state file `<OUT>.repozo-state`: what our last recover into OUT
//! wrote it as holding (its `.dat` lines) and OUT's fingerprint then
//! (device, inode, size, mtime, the md5 of its first and last MiB, the
//! transaction that ends it), which lets `-Q` prove OUT's prefix in
//! constant time. It exists only while it describes OUT.

use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};

use crate::error::{Error, IoContext, Result};
use crate::fs::{LEN_SIZE, TXN_HEADER_LEN};
use crate::io::{AtomicFile, open_regular};
use crate::ops::source::Source;
use crate::repo::DatEntry;

/// How many bytes of OUT's head and tail `-Q` checks.
const PROBE: u64 = 1 << 20;

/// The state file of OUT.
fn state_path(output: &str) -> String {
    format!("{output}.repozo-state")
}

/// Removes OUT's state file (and syncs its directory), if there is one:
/// called before OUT changes.
pub(super) fn remove_state(output: &str) -> Result<()> {
    let path = state_path(output);
    match std::fs::remove_file(&path) {
        Ok(()) => crate::io::sync_dir(std::path::Path::new(&path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// What the state file records about OUT besides its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    head_md5: String,
    tail_md5: String,
    /// The tid of the transaction that ends OUT, in hex.
    tid: String,
}

fn fingerprint(
    out: &Source,
    meta: &std::fs::Metadata,
) -> Result<std::result::Result<Fingerprint, String>> {
    let size = out.size;
    let probe = size.min(PROBE);
    let head_md5 = out.md5_range(0, probe)?;
    let tail_md5 = out.md5_range(size - probe, size)?;
    let Some(tid) = last_tid(out)? else {
        return Ok(Err(format!(
            "{} does not end with a whole transaction",
            out.path
        )));
    };
    Ok(Ok(Fingerprint {
        dev: meta.dev(),
        ino: meta.ino(),
        size,
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        head_md5,
        tail_md5,
        tid: crate::io::hex(&tid),
    }))
}

/// The tid of the transaction that ends at OUT's end, found through the
/// redundant length before it; `None` if that does not lead to a
/// transaction header recording the same length.
fn last_tid(out: &Source) -> Result<Option<[u8; 8]>> {
    let Some(at) = out.size.checked_sub(LEN_SIZE) else {
        return Ok(None);
    };
    let mut word = [0u8; 8];
    out.file.read_exact_at(&mut word, at).at(&out.path)?;
    let tlen = u64::from_be_bytes(word);
    let Some(tpos) = at
        .checked_sub(tlen)
        .filter(|&p| p >= 4 && tlen >= TXN_HEADER_LEN)
    else {
        return Ok(None);
    };
    let mut head = [0u8; 16];
    out.file
        .read_exact_at(&mut head, tpos)
        .at_byte(&out.path, tpos)?;
    let mut tid = [0u8; 8];
    tid.copy_from_slice(&head[..8]);
    word.copy_from_slice(&head[8..]);
    Ok((u64::from_be_bytes(word) == tlen).then_some(tid))
}

/// Writes the state file describing OUT as holding `lines` (atomically).
pub(super) fn write_state(output: &str, lines: &[DatEntry]) -> Result<()> {
    let file = open_regular(output).at(output)?;
    let meta = file.metadata().at(output)?;
    let out = Source {
        path: output.to_string(),
        file,
        size: meta.len(),
    };
    let Ok(fp) = fingerprint(&out, &meta)? else {
        return Ok(()); // nothing to record: the next -Q proves by md5
    };
    let mut text = String::from(
        "# repozo --incremental state of the Data.fs beside it; delete it to make the next \
         --incremental -Q prove the file by md5\nversion 1\n",
    );
    use std::fmt::Write as _;
    let _ = write!(
        text,
        "dev {}\nino {}\nsize {}\nmtime_ns {}\nhead_md5 {}\ntail_md5 {}\ntid {}\n",
        fp.dev, fp.ino, fp.size, fp.mtime_ns, fp.head_md5, fp.tail_md5, fp.tid
    );
    for l in lines {
        let _ = writeln!(
            text,
            "line {} {} {} {}",
            l.base_name(),
            l.start,
            l.end,
            l.md5
        );
    }
    let path = state_path(output);
    let mut f = AtomicFile::create(&path)?;
    f.write_all(text.as_bytes()).at(&path)?;
    f.commit()
}

/// `Ok(Ok(()))` if the state file says OUT holds a prefix of `all`'s lines
/// ending at its size, and OUT's fingerprint is the one recorded;
/// `Ok(Err(why))` otherwise.
pub(super) fn check_state(
    output: &str,
    meta: &std::fs::Metadata,
    out: &Source,
    all: &[DatEntry],
) -> Result<std::result::Result<(), String>> {
    let path = state_path(output);
    let text = match crate::io::read_regular(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(format!("{path} does not exist")));
        }
        Err(e) => return Ok(Err(Error::io(&path, e).to_string())),
    };
    let Some((recorded, lines)) = parse_state(&text) else {
        return Ok(Err(format!("{path} cannot be parsed")));
    };
    let now = match fingerprint(out, meta)? {
        Ok(fp) => fp,
        Err(why) => return Ok(Err(why)),
    };
    if recorded != now {
        return Ok(Err(format!(
            "{output} has changed since {path} was written"
        )));
    }
    let matches = lines.len() <= all.len()
        && lines.iter().zip(all).all(|((name, start, end, md5), l)| {
            l.base_name() == name && l.start == *start && l.end == *end && l.md5 == *md5
        });
    if !matches || lines.last().map(|l| l.2) != Some(out.size) {
        return Ok(Err(format!(
            "{path} records other backup files than the chain's"
        )));
    }
    Ok(Ok(()))
}

type StateLine = (String, u64, u64, String);

fn parse_state(text: &str) -> Option<(Fingerprint, Vec<StateLine>)> {
    let mut fields = std::collections::HashMap::new();
    let mut lines = Vec::new();
    for raw in text.lines() {
        if raw.starts_with('#') || raw.is_empty() {
            continue;
        }
        let (key, rest) = raw.split_once(' ')?;
        if key == "line" {
            let mut it = rest.split(' ');
            let name = it.next()?.to_string();
            let start = it.next()?.parse().ok()?;
            let end = it.next()?.parse().ok()?;
            let md5 = it.next()?.to_string();
            lines.push((name, start, end, md5));
        } else {
            fields.insert(key, rest);
        }
    }
    if fields.get("version") != Some(&"1") {
        return None;
    }
    let num = |k: &str| fields.get(k)?.parse::<u64>().ok();
    Some((
        Fingerprint {
            dev: num("dev")?,
            ino: num("ino")?,
            size: num("size")?,
            mtime_ns: fields.get("mtime_ns")?.parse().ok()?,
            head_md5: fields.get("head_md5")?.to_string(),
            tail_md5: fields.get("tail_md5")?.to_string(),
            tid: fields.get("tid")?.to_string(),
        },
        lines,
    ))
}
