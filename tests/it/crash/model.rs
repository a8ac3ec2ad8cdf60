//! The two persistence models and ALICE's exploration of crash states.
//!
//! A recorded call's operations are first split as the model allows
//! ([`expand`]): writes at 4 KiB boundaries of the file; in the weak model
//! an append first grows the file with zeros (the size reaching the disk
//! before the data) and a rename becomes "delete the destination, delete
//! the source, create the destination". Each operation then depends on
//! others ([`deps`]); a crash state is a set of operations closed under
//! these dependencies, applied in program order to the directory as it was
//! before the run ([`states`]).
//!
//! - **Weak** (what POSIX promises): every operation depends on the most
//!   recent sync or output before it; an fsync depends on the earlier
//!   writes and truncations of its inode and, for a directory, on the
//!   earlier entries made or removed in it — so the fsync of a file does
//!   not make its directory entry durable; a syncfs depends on everything
//!   before it.
//! - **Strong** (ext4 `data=ordered`-like): the same, but renames are
//!   atomic, appends carry their data with their size, directory
//!   operations reach the disk in program order, and any fsync commits the
//!   directory operations before it (the journal).

use std::collections::BTreeSet;

use super::trace::{Ino, Op, Syscall};

/// A persistence model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Weak,
    Strong,
}

impl Model {
    pub const BOTH: [Model; 2] = [Model::Weak, Model::Strong];

    pub fn name(self) -> &'static str {
        match self {
            Model::Weak => "weak",
            Model::Strong => "strong",
        }
    }
}

/// The granularity of torn writes.
pub const BLOCK: u64 = 4096;

/// One operation after the model's split, and the call it came from.
#[derive(Clone, Debug)]
pub struct Micro {
    pub call: usize,
    pub op: Op,
}

/// Splits every call's operations as `model` allows.
pub fn expand(calls: &[Syscall], model: Model) -> Vec<Micro> {
    let mut out = Vec::new();
    for (call, sc) in calls.iter().enumerate() {
        let mut sizes = sc.sizes.clone();
        for op in &sc.ops {
            let mut push = |op: Op| out.push(Micro { call, op });
            match op {
                Op::Write { ino, off, data } => {
                    let size = sizes.get(ino).copied().unwrap_or(0);
                    let end = off + data.len() as u64;
                    if model == Model::Weak && end > size {
                        push(Op::Garbage {
                            ino: *ino,
                            off: size,
                            len: end - size,
                        });
                    }
                    let mut at = *off;
                    while at < end {
                        let next = ((at / BLOCK + 1) * BLOCK).min(end);
                        push(Op::Write {
                            ino: *ino,
                            off: at,
                            data: data[(at - off) as usize..(next - off) as usize].to_vec(),
                        });
                        at = next;
                    }
                    sizes.insert(*ino, size.max(end));
                }
                Op::Rename {
                    from,
                    to,
                    ino,
                    replaced,
                } if model == Model::Weak => {
                    if let Some(r) = replaced {
                        push(Op::Delete {
                            parent: to.0,
                            name: to.1.clone(),
                            ino: *r,
                        });
                    }
                    push(Op::Delete {
                        parent: from.0,
                        name: from.1.clone(),
                        ino: *ino,
                    });
                    push(Op::Create {
                        parent: to.0,
                        name: to.1.clone(),
                        ino: *ino,
                    });
                }
                Op::Exchange { a, b, ia, ib } if model == Model::Weak => {
                    push(Op::Delete {
                        parent: a.0,
                        name: a.1.clone(),
                        ino: *ia,
                    });
                    push(Op::Delete {
                        parent: b.0,
                        name: b.1.clone(),
                        ino: *ib,
                    });
                    push(Op::Create {
                        parent: a.0,
                        name: a.1.clone(),
                        ino: *ib,
                    });
                    push(Op::Create {
                        parent: b.0,
                        name: b.1.clone(),
                        ino: *ia,
                    });
                }
                Op::Truncate { ino, size } => {
                    sizes.insert(*ino, *size);
                    push(op.clone());
                }
                _ => push(op.clone()),
            }
        }
    }
    out
}

fn is_barrier(op: &Op) -> bool {
    matches!(
        op,
        Op::Sync { .. } | Op::SyncAll | Op::Output | Op::Exit { .. }
    )
}

fn is_dir_op(op: &Op) -> bool {
    matches!(
        op,
        Op::Create { .. } | Op::Delete { .. } | Op::Rename { .. } | Op::Exchange { .. }
    )
}

/// Whether `op` changes inode `ino` (its data, or its entries if a
/// directory).
fn touches(op: &Op, ino: Ino) -> bool {
    match op {
        Op::Write { ino: i, .. } | Op::Garbage { ino: i, .. } | Op::Truncate { ino: i, .. } => {
            *i == ino
        }
        Op::Create { parent, .. } | Op::Delete { parent, .. } => *parent == ino,
        Op::Rename { from, to, .. } => from.0 == ino || to.0 == ino,
        Op::Exchange { a, b, .. } => a.0 == ino || b.0 == ino,
        _ => false,
    }
}

/// For each operation, the earlier ones it depends on.
pub fn deps(ops: &[Micro], model: Model) -> Vec<Vec<usize>> {
    let mut out = Vec::with_capacity(ops.len());
    let mut last_barrier: Option<usize> = None;
    let mut last_dir_op: Option<usize> = None;
    for (p, m) in ops.iter().enumerate() {
        let mut d: BTreeSet<usize> = BTreeSet::new();
        d.extend(last_barrier);
        match &m.op {
            Op::SyncAll => d.extend(0..p),
            Op::Sync { ino } => {
                for (q, earlier) in ops[..p].iter().enumerate() {
                    if touches(&earlier.op, *ino)
                        || (model == Model::Strong && is_dir_op(&earlier.op))
                    {
                        d.insert(q);
                    }
                }
            }
            op if model == Model::Strong && is_dir_op(op) => d.extend(last_dir_op),
            _ => {}
        }
        if is_dir_op(&m.op) {
            last_dir_op = Some(p);
        }
        if is_barrier(&m.op) {
            last_barrier = Some(p);
        }
        out.push(d.into_iter().collect());
    }
    out
}

/// A crash state: which operations reached the disk, and how it was made
/// (for reports).
#[derive(Clone, Debug)]
pub struct State {
    pub kept: Vec<bool>,
    pub how: String,
    /// A rename (or exchange) torn between removing a name and making
    /// one (the weak model only): a name may be lost.
    pub torn_rename: bool,
}

/// ALICE's states: every prefix at call boundaries; every prefix with
/// one earlier call's operations dropped, where the dependencies allow;
/// every call torn (a prefix of its operations, or all but one).
pub fn states(ops: &[Micro], ncalls: usize, deps: &[Vec<usize>]) -> Vec<State> {
    let legal = |kept: &[bool]| {
        kept.iter()
            .enumerate()
            .all(|(p, &k)| !k || deps[p].iter().all(|&q| kept[q]))
    };
    let of_call = |c: usize| -> Vec<usize> {
        ops.iter()
            .enumerate()
            .filter(|(_, m)| m.call == c)
            .map(|(i, _)| i)
            .collect()
    };
    let through = |c: usize| -> Vec<bool> { ops.iter().map(|m| m.call < c).collect() };
    let mut out = Vec::new();
    for k in 0..=ncalls {
        out.push(State {
            kept: through(k),
            how: format!("crash after call {k}"),
            torn_rename: false,
        });
    }
    for i in 0..ncalls {
        let mine = of_call(i);
        if !mine.iter().any(|&p| ops[p].op.persists()) {
            continue;
        }
        for j in i + 1..ncalls {
            let mut kept = through(j + 1);
            for &p in &mine {
                kept[p] = false;
            }
            if legal(&kept) {
                out.push(State {
                    kept,
                    how: format!("calls 0..={j} without call {i}"),
                    torn_rename: false,
                });
            } else {
                // Later states keep what depends on call i too.
                break;
            }
        }
    }
    for k in 0..ncalls {
        let mine = of_call(k);
        if mine.len() < 2 {
            continue;
        }
        let base = through(k);
        let torn_rename = mine.iter().any(|&p| matches!(ops[p].op, Op::Create { .. }))
            && mine.iter().any(|&p| matches!(ops[p].op, Op::Delete { .. }));
        for n in 1..mine.len() {
            let mut kept = base.clone();
            for &p in &mine[..n] {
                kept[p] = true;
            }
            if legal(&kept) {
                out.push(State {
                    kept,
                    how: format!("call {k} torn: its first {n} of {} operations", mine.len()),
                    torn_rename,
                });
            }
        }
        for skip in 0..mine.len() - 1 {
            let mut kept = base.clone();
            for (x, &p) in mine.iter().enumerate() {
                kept[p] = x != skip;
            }
            if legal(&kept) {
                out.push(State {
                    kept,
                    how: format!(
                        "call {k} torn: all of its {} operations but #{skip}",
                        mine.len()
                    ),
                    torn_rename,
                });
            }
        }
    }
    out
}
