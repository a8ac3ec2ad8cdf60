//! Recording: a real run of the binary under `strace`, turned into the
//! file-system operations of ALICE's abstract persistence model
//! ([`Op`]), grouped by the system call that issued them ([`Syscall`]).
//!
//! The recorder keeps its own copy of the file system under the site
//! directory ([`Fs`], built from the directory before the run and updated
//! by every recorded call), so that it knows which inode a descriptor or a
//! path names (a descriptor keeps its inode after its path is renamed),
//! how long a file is (what part of a write is an append), and what bytes
//! a `copy_file_range` copies (strace shows none: they are taken from the
//! source inode as the recorder holds it at that moment, which is exact
//! because every write to it was recorded).
//!
//! Invariant: everything the binary changes under the site directory goes
//! through a call in [`TRACED`]; a call that changes files in a way this
//! recorder does not model (a shared writable `mmap`, `sendfile`,
//! `splice`, io_uring) fails the recording, naming it,
//! instead of being left out silently.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The calls recorded. Reads and seeks only move descriptor offsets;
/// `mmap`, `sendfile`, `splice` and `io_uring_setup` are traced to refuse
/// them.
pub const TRACED: &str = "openat,open,creat,write,pwrite64,writev,pwritev,pwritev2,ftruncate,\
truncate,fallocate,rename,renameat,renameat2,unlink,unlinkat,rmdir,mkdir,mkdirat,link,linkat,\
fsync,fdatasync,syncfs,sync,copy_file_range,sendfile,splice,mmap,io_uring_setup,read,lseek,\
close,dup,dup2,dup3,fcntl,chdir,exit_group";

/// An inode of the model.
pub type Ino = usize;

/// One operation of the abstract persistence model.
#[derive(Clone, Debug)]
pub enum Op {
    /// Bytes written at an offset (within or past the end).
    Write { ino: Ino, off: u64, data: Vec<u8> },
    /// The size of a file grown to `off + len` before its data reached
    /// the disk: zeros there (ALICE's garbage; zeros are what a power cut
    /// leaves on ext4 and XFS).
    Garbage { ino: Ino, off: u64, len: u64 },
    /// The file cut or extended (with zeros) to `size`.
    Truncate { ino: Ino, size: u64 },
    /// A directory entry `parent/name → ino` made.
    Create { parent: Ino, name: String, ino: Ino },
    /// A directory entry `parent/name → ino` removed.
    Delete { parent: Ino, name: String, ino: Ino },
    /// An atomic rename (the strong model's; the weak model splits it).
    Rename {
        from: (Ino, String),
        to: (Ino, String),
        ino: Ino,
        replaced: Option<Ino>,
    },
    /// Two names trading inodes atomically (`RENAME_EXCHANGE`; the weak
    /// model splits it into two deletions and two creations).
    Exchange {
        a: (Ino, String),
        b: (Ino, String),
        ia: Ino,
        ib: Ino,
    },
    /// fsync/fdatasync of an inode (a file or a directory).
    Sync { ino: Ino },
    /// sync/syncfs: everything before it is durable.
    SyncAll,
    /// Bytes the user saw (a write to standard output or error).
    Output,
    /// The run ended with this exit status.
    Exit { code: i32 },
}

impl Op {
    /// Whether the operation changes what is on disk (not a sync, an
    /// output or the exit).
    pub fn persists(&self) -> bool {
        !matches!(
            self,
            Op::Sync { .. } | Op::SyncAll | Op::Output | Op::Exit { .. }
        )
    }
}

/// One recorded system call and the operations it issued (before the
/// model splits them).
#[derive(Clone, Debug)]
pub struct Syscall {
    /// The strace line, shortened, for reports.
    pub line: String,
    pub ops: Vec<Op>,
    /// The size of each written inode before the call (what part of a
    /// write is an append).
    pub sizes: HashMap<Ino, u64>,
}

/// An inode's content.
#[derive(Clone, Debug)]
pub enum Node {
    File(Vec<u8>),
    Dir(BTreeMap<String, Ino>),
}

/// A file system: inodes, the site directory being inode 0.
#[derive(Clone, Debug, Default)]
pub struct Fs {
    pub nodes: Vec<Node>,
}

impl Fs {
    /// Reads the tree under `root` (hard links share an inode).
    pub fn load(root: &Path) -> Fs {
        let mut fs = Fs {
            nodes: vec![Node::Dir(BTreeMap::new())],
        };
        let mut seen = HashMap::new();
        fn walk(fs: &mut Fs, seen: &mut HashMap<(u64, u64), Ino>, dir: &Path, ino: Ino) {
            let mut rd: Vec<_> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap())
                .collect();
            rd.sort_by_key(|e| e.file_name());
            for e in rd {
                let p = e.path();
                let md = std::fs::symlink_metadata(&p).unwrap();
                let name = e.file_name().into_string().unwrap();
                let child = if let Some(&i) = seen.get(&(md.dev(), md.ino())) {
                    i
                } else if md.is_dir() {
                    let i = fs.push(Node::Dir(BTreeMap::new()));
                    walk(fs, seen, &p, i);
                    i
                } else if md.is_file() {
                    let data = std::fs::read(&p).unwrap();
                    let i = fs.push(Node::File(data));
                    seen.insert((md.dev(), md.ino()), i);
                    i
                } else {
                    panic!("{}: only files and directories are modelled", p.display())
                };
                fs.dir_mut(ino).insert(name, child);
            }
        }
        walk(&mut fs, &mut seen, root, 0);
        fs
    }

    fn push(&mut self, n: Node) -> Ino {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn dir_mut(&mut self, ino: Ino) -> &mut BTreeMap<String, Ino> {
        match &mut self.nodes[ino] {
            Node::Dir(d) => d,
            Node::File(_) => panic!("inode {ino} is not a directory"),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> &mut Vec<u8> {
        match &mut self.nodes[ino] {
            Node::File(d) => d,
            Node::Dir(_) => panic!("inode {ino} is not a file"),
        }
    }

    /// The size of a file inode (0 for a directory).
    pub fn size(&self, ino: Ino) -> u64 {
        match &self.nodes[ino] {
            Node::File(d) => d.len() as u64,
            Node::Dir(_) => 0,
        }
    }

    /// The inode at `parent/name`.
    pub fn lookup(&self, parent: Ino, name: &str) -> Option<Ino> {
        match &self.nodes[parent] {
            Node::Dir(d) => d.get(name).copied(),
            Node::File(_) => None,
        }
    }

    /// Applies one operation. Entries are removed only if they still name
    /// the inode the operation names (a create may have replaced them).
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Write { ino, off, data } => {
                let f = self.file_mut(*ino);
                let end = *off as usize + data.len();
                if f.len() < end {
                    f.resize(end, 0);
                }
                f[*off as usize..end].copy_from_slice(data);
            }
            Op::Garbage { ino, off, len } => {
                let f = self.file_mut(*ino);
                let end = (*off + *len) as usize;
                if f.len() < end {
                    f.resize(end, 0);
                }
            }
            Op::Truncate { ino, size } => self.file_mut(*ino).resize(*size as usize, 0),
            Op::Create { parent, name, ino } => {
                self.dir_mut(*parent).insert(name.clone(), *ino);
            }
            Op::Delete { parent, name, ino } => {
                let d = self.dir_mut(*parent);
                if d.get(name) == Some(ino) {
                    d.remove(name);
                }
            }
            Op::Rename { from, to, ino, .. } => {
                let d = self.dir_mut(from.0);
                if d.get(&from.1) == Some(ino) {
                    d.remove(&from.1);
                }
                self.dir_mut(to.0).insert(to.1.clone(), *ino);
            }
            Op::Exchange { a, b, ia, ib } => {
                self.dir_mut(a.0).insert(a.1.clone(), *ib);
                self.dir_mut(b.0).insert(b.1.clone(), *ia);
            }
            Op::Sync { .. } | Op::SyncAll | Op::Output | Op::Exit { .. } => {}
        }
    }

    /// The files reachable from the root: relative path → bytes
    /// (directories as `None`).
    pub fn tree(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        fn walk(fs: &Fs, ino: Ino, prefix: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
            if let Node::Dir(d) = &fs.nodes[ino] {
                for (name, &child) in d {
                    let p = format!("{prefix}{name}");
                    match &fs.nodes[child] {
                        Node::File(data) => {
                            out.insert(p, Some(data.clone()));
                        }
                        Node::Dir(_) => {
                            out.insert(p.clone(), None);
                            walk(fs, child, &format!("{p}/"), out);
                        }
                    }
                }
            }
        }
        walk(self, 0, "", &mut out);
        out
    }
}

/// Writes a tree made by [`Fs::tree`] under `dir` (which exists, empty).
pub fn materialize(tree: &BTreeMap<String, Option<Vec<u8>>>, dir: &Path) {
    for (p, content) in tree {
        let path = dir.join(p);
        match content {
            None => std::fs::create_dir_all(&path).unwrap(),
            Some(b) => std::fs::write(&path, b).unwrap(),
        }
    }
}

/// A recorded run: the file system before it and its system calls.
pub struct Recording {
    pub before: Fs,
    pub calls: Vec<Syscall>,
    /// The exit status of the real run.
    pub status: i32,
    pub stderr: String,
}

/// Runs `cmd` (whose current directory must be `site`) under strace and
/// turns the trace into [`Syscall`]s. Panics, naming the reason, if
/// strace is missing or the trace holds a call the model cannot replay.
pub fn record(site: &Path, cmd: Command) -> Recording {
    let site = site.canonicalize().unwrap();
    let before = Fs::load(&site);
    let log = tempfile::NamedTempFile::new().unwrap();
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut st = Command::new("strace");
    st.args(["-f", "-y", "-qq", "-s", "64", "-e", "write=all", "-e"])
        .arg(format!("trace={TRACED}"))
        .arg("-o")
        .arg(log.path())
        .arg(&prog)
        .args(&args)
        .current_dir(&site);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => st.env(k, v),
            None => st.env_remove(k),
        };
    }
    let out = st
        .output()
        .unwrap_or_else(|e| panic!("cannot run strace (install it: apt-get install strace): {e}"));
    let text = std::fs::read_to_string(log.path()).unwrap();
    let status = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (calls, end) = Parser::new(&site, before.clone()).parse(&text);
    // The inodes the run made exist, empty and unnamed, before it.
    let mut before = before;
    for n in &end.nodes[before.nodes.len()..] {
        before.nodes.push(match n {
            Node::File(_) => Node::File(Vec::new()),
            Node::Dir(_) => Node::Dir(BTreeMap::new()),
        });
    }
    Recording {
        before,
        calls,
        status,
        stderr,
    }
}

/// An open descriptor.
#[derive(Clone, Debug)]
struct Fd {
    ino: Option<Ino>,
    off: u64,
    append: bool,
}

/// Turns strace's text into [`Syscall`]s, replaying them on its own
/// [`Fs`].
pub struct Parser {
    site: PathBuf,
    fs: Fs,
    fds: HashMap<i64, Fd>,
    /// The pid of the recorded program (the trace's first).
    root: Option<String>,
}

/// A completed call: its name, arguments, result and dumped bytes.
struct Call {
    pid: String,
    name: String,
    args: Vec<String>,
    ret: i64,
    dump: Vec<u8>,
    line: String,
}

impl Parser {
    pub fn new(site: &Path, fs: Fs) -> Parser {
        Parser {
            site: site.to_path_buf(),
            fs,
            fds: HashMap::new(),
            root: None,
        }
    }

    /// Parses a whole trace (`strace -f -y -e write=all` output): the
    /// calls, and the file system after them.
    pub fn parse(mut self, text: &str) -> (Vec<Syscall>, Fs) {
        let mut pending: HashMap<String, String> = HashMap::new();
        let mut calls: Vec<Call> = Vec::new();
        for raw in text.lines() {
            let line = raw.trim_end();
            if let Some(rest) = line.strip_prefix(" | ") {
                // A hex dump line: " | 00000  6c 6f ...  text |".
                let hex = rest
                    .get(7..7 + 16 * 3 + 1)
                    .unwrap_or(&rest[7.min(rest.len())..]);
                let last = calls.last_mut().expect("a dump before any call");
                for tok in hex.split_whitespace() {
                    if tok.len() == 2
                        && let Ok(b) = u8::from_str_radix(tok, 16)
                    {
                        last.dump.push(b);
                        continue;
                    }
                    break;
                }
                continue;
            }
            if line.starts_with(" * ") || line.is_empty() {
                continue;
            }
            let Some((pid, body)) = line.split_once(' ') else {
                continue;
            };
            let body = body.trim_start();
            if body.starts_with("+++") || body.starts_with("---") {
                continue;
            }
            let full = if let Some(head) = body.strip_suffix("<unfinished ...>") {
                pending.insert(pid.to_string(), head.to_string());
                continue;
            } else if let Some(rest) = body.strip_prefix("<... ") {
                let (_, tail) = rest.split_once(" resumed>").expect("a resumed line");
                let head = pending.remove(pid).unwrap_or_default();
                format!("{head}{tail}")
            } else {
                body.to_string()
            };
            if let Some(mut c) = parse_call(&full) {
                c.pid = pid.to_string();
                calls.push(c);
            }
        }
        // Only the recorded program's own exit acknowledges (not that of a
        // child it ran).
        self.root = calls.first().map(|c| c.pid.clone());
        let mut out = Vec::new();
        for c in calls {
            let mut sizes = HashMap::new();
            let ops = self.replay(&c, &mut sizes);
            if !ops.is_empty() {
                out.push(Syscall {
                    line: shorten(&c.line),
                    ops,
                    sizes,
                });
            }
        }
        (out, self.fs)
    }

    /// The inode a path names under the site (`None` outside it or
    /// missing), and its parent and last component.
    fn resolve(&self, dirfd: &str, path: &str) -> Option<(Ino, String, Option<Ino>)> {
        let base = if path.starts_with('/') {
            PathBuf::new()
        } else if dirfd.starts_with("AT_FDCWD") {
            annotated(dirfd).unwrap_or_else(|| self.site.clone())
        } else {
            // A directory descriptor: its inode, if inside the site.
            let fd: i64 = dirfd.split('<').next()?.parse().ok()?;
            if let Some(Fd { ino: Some(ino), .. }) = self.fds.get(&fd) {
                return self.walk_from(*ino, Path::new(path));
            }
            annotated(dirfd)?
        };
        let full = normalize(&base.join(path));
        let rel = full.strip_prefix(&self.site).ok()?.to_path_buf();
        self.walk_from(0, &rel)
    }

    fn walk_from(&self, mut dir: Ino, rel: &Path) -> Option<(Ino, String, Option<Ino>)> {
        let comps: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_str().unwrap().to_string()),
                _ => None,
            })
            .collect();
        let Some((last, init)) = comps.split_last() else {
            // The directory itself: report it as its own entry.
            return Some((dir, String::new(), Some(dir)));
        };
        for c in init {
            dir = self.fs.lookup(dir, c)?;
        }
        let ino = self.fs.lookup(dir, last);
        Some((dir, last.clone(), ino))
    }

    fn fd(&self, arg: &str) -> Option<(i64, Fd)> {
        let n: i64 = arg.split('<').next()?.trim().parse().ok()?;
        self.fds.get(&n).map(|f| (n, f.clone()))
    }

    fn new_inode(&mut self, n: Node) -> Ino {
        self.fs.nodes.push(n);
        self.fs.nodes.len() - 1
    }

    fn emit(&mut self, op: Op, ops: &mut Vec<Op>, sizes: &mut HashMap<Ino, u64>) {
        match &op {
            Op::Write { ino, .. } | Op::Garbage { ino, .. } | Op::Truncate { ino, .. } => {
                sizes.entry(*ino).or_insert(self.fs.size(*ino));
            }
            _ => {}
        }
        self.fs.apply(&op);
        ops.push(op);
    }

    fn write_ops(&mut self, fd: i64, off: Option<u64>, data: Vec<u8>) -> Vec<Op> {
        let Some(f) = self.fds.get(&fd).cloned() else {
            return Vec::new();
        };
        let Some(ino) = f.ino else {
            return Vec::new();
        };
        let at = match off {
            Some(o) => o,
            None if f.append => self.fs.size(ino),
            None => f.off,
        };
        if off.is_none() {
            self.fds.get_mut(&fd).unwrap().off = at + data.len() as u64;
        }
        vec![Op::Write { ino, off: at, data }]
    }

    fn replay(&mut self, c: &Call, sizes: &mut HashMap<Ino, u64>) -> Vec<Op> {
        let mut ops = Vec::new();
        let a = |i: usize| c.args.get(i).map(String::as_str).unwrap_or("");
        if c.ret < 0 && c.name != "exit_group" {
            return ops;
        }
        match c.name.as_str() {
            "openat" | "open" | "creat" => {
                let (dirfd, path, flags) = if c.name == "openat" {
                    (a(0), unquote(a(1)), a(2))
                } else if c.name == "creat" {
                    ("AT_FDCWD", unquote(a(0)), "O_CREAT|O_WRONLY|O_TRUNC")
                } else {
                    ("AT_FDCWD", unquote(a(0)), a(1))
                };
                let fd = Fd {
                    ino: None,
                    off: 0,
                    append: flags.contains("O_APPEND"),
                };
                let mut fd = fd;
                if let Some((parent, name, ino)) = self.resolve(dirfd, &path) {
                    let ino = match ino {
                        Some(i) => {
                            if flags.contains("O_TRUNC") && self.fs.size(i) > 0 {
                                self.emit(Op::Truncate { ino: i, size: 0 }, &mut ops, sizes);
                            }
                            Some(i)
                        }
                        None if flags.contains("O_CREAT") => {
                            let i = self.new_inode(Node::File(Vec::new()));
                            self.emit(
                                Op::Create {
                                    parent,
                                    name,
                                    ino: i,
                                },
                                &mut ops,
                                sizes,
                            );
                            Some(i)
                        }
                        None => panic!("{}: opened a path the model does not have", c.line),
                    };
                    fd.ino = ino;
                }
                self.fds.insert(c.ret, fd);
            }
            "close" => {
                if let Ok(n) = a(0).split('<').next().unwrap_or("").parse::<i64>() {
                    self.fds.remove(&n);
                }
            }
            "dup" | "dup2" | "dup3" => match self.fd(a(0)) {
                Some((_, f)) => {
                    self.fds.insert(c.ret, f);
                }
                None => {
                    self.fds.remove(&c.ret);
                }
            },
            "fcntl" if a(1).starts_with("F_DUPFD") => {
                if let Some((_, f)) = self.fd(a(0)) {
                    self.fds.insert(c.ret, f);
                }
            }
            "read" => {
                if let Some((n, f)) = self.fd(a(0)) {
                    self.fds.get_mut(&n).unwrap().off = f.off + c.ret as u64;
                }
            }
            "lseek" => {
                if let Some((n, _)) = self.fd(a(0)) {
                    self.fds.get_mut(&n).unwrap().off = c.ret as u64;
                }
            }
            "write" | "writev" | "pwrite64" | "pwritev" | "pwritev2" => {
                let n: i64 = a(0).split('<').next().unwrap().parse().unwrap_or(-1);
                let mut data = c.dump.clone();
                data.truncate(c.ret as usize);
                assert_eq!(
                    data.len(),
                    c.ret as usize,
                    "{}: strace dumped {} of its bytes",
                    c.line,
                    data.len()
                );
                let off = match c.name.as_str() {
                    "pwrite64" => Some(a(3).parse().unwrap()),
                    "pwritev" | "pwritev2" => Some(a(3).parse().unwrap()),
                    _ => None,
                };
                if self.fds.get(&n).is_some_and(|f| f.ino.is_some()) {
                    for op in self.write_ops(n, off, data) {
                        self.emit(op, &mut ops, sizes);
                    }
                } else if n == 1 || n == 2 {
                    ops.push(Op::Output);
                }
            }
            "copy_file_range" => {
                let (Some((nin, fin)), Some((nout, fout))) = (self.fd(a(0)), self.fd(a(2))) else {
                    return ops;
                };
                let len = c.ret as u64;
                let (Some(src), Some(dst)) = (fin.ino, fout.ino) else {
                    panic!(
                        "{}: a copy from or to outside the site is not modelled",
                        c.line
                    )
                };
                let off_in = ptr_offset(a(1)).unwrap_or(fin.off);
                let off_out = ptr_offset(a(3)).unwrap_or(fout.off);
                if ptr_offset(a(1)).is_none() {
                    self.fds.get_mut(&nin).unwrap().off = off_in + len;
                }
                if ptr_offset(a(3)).is_none() {
                    self.fds.get_mut(&nout).unwrap().off = off_out + len;
                }
                let Node::File(bytes) = &self.fs.nodes[src] else {
                    panic!("{}: copy from a directory", c.line)
                };
                let data = bytes[off_in as usize..(off_in + len) as usize].to_vec();
                self.emit(
                    Op::Write {
                        ino: dst,
                        off: off_out,
                        data,
                    },
                    &mut ops,
                    sizes,
                );
            }
            "ftruncate" | "truncate" => {
                let ino = if c.name == "ftruncate" {
                    self.fd(a(0)).and_then(|(_, f)| f.ino)
                } else {
                    self.resolve("AT_FDCWD", &unquote(a(0))).and_then(|r| r.2)
                };
                if let Some(ino) = ino {
                    let size = a(1).parse().unwrap();
                    self.emit(Op::Truncate { ino, size }, &mut ops, sizes);
                }
            }
            "fallocate" => {
                if let Some((_, Fd { ino: Some(ino), .. })) = self.fd(a(0)) {
                    let (mode, off, len): (&str, u64, u64) =
                        (a(1), a(2).parse().unwrap(), a(3).parse().unwrap());
                    if mode == "0" && off + len > self.fs.size(ino) {
                        let size = off + len;
                        self.emit(Op::Truncate { ino, size }, &mut ops, sizes);
                    }
                }
            }
            "rename" | "renameat" | "renameat2" => {
                let (fd1, p1, fd2, p2) = if c.name == "rename" {
                    ("AT_FDCWD", unquote(a(0)), "AT_FDCWD", unquote(a(1)))
                } else {
                    (a(0), unquote(a(1)), a(2), unquote(a(3)))
                };
                let from = self.resolve(fd1, &p1);
                let to = self.resolve(fd2, &p2);
                if c.name == "renameat2" && a(4).contains("EXCHANGE") {
                    let (Some((pa, na, Some(ia))), Some((pb, nb, Some(ib)))) = (from, to) else {
                        panic!(
                            "{}: an exchange across the site's edge is not modelled",
                            c.line
                        )
                    };
                    let op = Op::Exchange {
                        a: (pa, na),
                        b: (pb, nb),
                        ia,
                        ib,
                    };
                    self.emit(op, &mut ops, sizes);
                    return ops;
                }
                match (from, to) {
                    (Some((fp, fname, Some(ino))), Some((tp, tname, replaced))) => {
                        self.emit(
                            Op::Rename {
                                from: (fp, fname),
                                to: (tp, tname),
                                ino,
                                replaced,
                            },
                            &mut ops,
                            sizes,
                        );
                    }
                    (None, None) => {}
                    _ => panic!(
                        "{}: a rename across the site's edge is not modelled",
                        c.line
                    ),
                }
            }
            "unlink" | "unlinkat" | "rmdir" => {
                let (fd, p) = if c.name == "unlinkat" {
                    (a(0), unquote(a(1)))
                } else {
                    ("AT_FDCWD", unquote(a(0)))
                };
                if let Some((parent, name, Some(ino))) = self.resolve(fd, &p) {
                    self.emit(Op::Delete { parent, name, ino }, &mut ops, sizes);
                }
            }
            "mkdir" | "mkdirat" => {
                let (fd, p) = if c.name == "mkdirat" {
                    (a(0), unquote(a(1)))
                } else {
                    ("AT_FDCWD", unquote(a(0)))
                };
                if let Some((parent, name, None)) = self.resolve(fd, &p) {
                    let ino = self.new_inode(Node::Dir(BTreeMap::new()));
                    self.emit(Op::Create { parent, name, ino }, &mut ops, sizes);
                }
            }
            "link" | "linkat" => {
                let (fd1, p1, fd2, p2) = if c.name == "link" {
                    ("AT_FDCWD", unquote(a(0)), "AT_FDCWD", unquote(a(1)))
                } else {
                    (a(0), unquote(a(1)), a(2), unquote(a(3)))
                };
                if let (Some((_, _, Some(ino))), Some((parent, name, None))) =
                    (self.resolve(fd1, &p1), self.resolve(fd2, &p2))
                {
                    self.emit(Op::Create { parent, name, ino }, &mut ops, sizes);
                }
            }
            "fsync" | "fdatasync" => {
                if let Some((_, Fd { ino: Some(ino), .. })) = self.fd(a(0)) {
                    ops.push(Op::Sync { ino });
                }
            }
            "sync" | "syncfs" => ops.push(Op::SyncAll),
            "exit_group" if self.root.as_deref() == Some(c.pid.as_str()) => ops.push(Op::Exit {
                code: a(0).parse().unwrap_or(-1),
            }),
            "mmap"
                if a(3).contains("MAP_SHARED")
                    && a(2).contains("PROT_WRITE")
                    && !a(4).starts_with("-1") =>
            {
                panic!("{}: a shared writable mapping is not modelled", c.line);
            }
            "sendfile" | "splice" | "io_uring_setup" | "chdir" => {
                panic!("{}: not modelled", c.line)
            }
            _ => {}
        }
        ops
    }
}

/// `name(args) = ret ...` → a [`Call`].
fn parse_call(s: &str) -> Option<Call> {
    let open = s.find('(')?;
    let name = s[..open].to_string();
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let rest = &s[open + 1..];
    let (args, after) = split_args(rest)?;
    let ret = after
        .trim_start()
        .strip_prefix('=')
        .map(str::trim)
        .and_then(|r| r.split_whitespace().next())
        .map(|r| {
            let r = r.split('<').next().unwrap();
            if r == "?" {
                0
            } else if let Some(h) = r.strip_prefix("0x") {
                i64::from_str_radix(h, 16).unwrap_or(0)
            } else {
                r.parse().unwrap_or(-1)
            }
        })
        .unwrap_or(0);
    Some(Call {
        pid: String::new(),
        name,
        args,
        ret,
        dump: Vec::new(),
        line: s.to_string(),
    })
}

/// Splits the arguments up to the closing parenthesis, keeping quoted
/// strings, brackets, braces and `<path>` annotations whole.
fn split_args(s: &str) -> Option<(Vec<String>, &str)> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote = false;
    let mut esc = false;
    for (i, ch) in s.char_indices() {
        if quote {
            cur.push(ch);
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == '"' {
                quote = false;
            }
            continue;
        }
        match ch {
            '"' => {
                quote = true;
                cur.push(ch);
            }
            '(' | '[' | '{' | '<' => {
                depth += 1;
                cur.push(ch);
            }
            ']' | '}' | '>' => {
                depth -= 1;
                cur.push(ch);
            }
            ')' if depth == 0 => {
                if !cur.trim().is_empty() {
                    args.push(cur.trim().to_string());
                }
                return Some((args, &s[i + 1..]));
            }
            ')' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => {
                args.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    None
}

/// The path in a `3</a/b>` or `AT_FDCWD</a>` annotation.
fn annotated(arg: &str) -> Option<PathBuf> {
    let start = arg.find('<')?;
    let end = arg.rfind('>')?;
    Some(PathBuf::from(&arg[start + 1..end]))
}

/// A C string literal as strace prints it, unescaped.
fn unquote(arg: &str) -> String {
    let s = arg.trim();
    let s = s.strip_suffix("...").unwrap_or(s);
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            match b[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b'0'..=b'7' => {
                    let mut j = i;
                    while j < b.len() && j < i + 3 && (b'0'..=b'7').contains(&b[j]) {
                        j += 1;
                    }
                    out.push(u8::from_str_radix(&s[i..j], 8).unwrap());
                    i = j - 1;
                }
                c => out.push(c),
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The offset behind a `copy_file_range` offset pointer: `NULL` → none,
/// `[x]` or `[x => y]` → x.
fn ptr_offset(arg: &str) -> Option<u64> {
    let inner = arg.strip_prefix('[')?.strip_suffix(']')?;
    inner.split("=>").next()?.trim().parse().ok()
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn shorten(line: &str) -> String {
    if line.len() > 160 {
        let mut end = 160;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &line[..end])
    } else {
        line.to_string()
    }
}
