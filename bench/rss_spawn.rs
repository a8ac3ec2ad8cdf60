//! rss_spawn -- run one command; report its wall time, peak RSS and status.
//!
//! Built by bench/bench.py with plain `rustc -O` (std only, Linux, 64-bit):
//!
//!     rss_spawn REPORT_FILE PROGRAM [ARGS...]
//!
//! PROGRAM inherits stdin/stdout/stderr.  When it has ended, REPORT_FILE gets
//! one line "<seconds> <ru_maxrss KiB> <exit code>" (exit code -N: killed by
//! signal N).  rss_spawn itself exits 0, or 1 if it could not run PROGRAM.
//!
//! Why not os.wait4() in the Python benchmark itself?  Linux carries the
//! RSS high-water mark of the process image that a child replaces at exec
//! into the child's ru_maxrss.  A child spawned by the benchmark's Python
//! process (about 20 MB resident) therefore reports at least those 20 MB,
//! whatever it uses itself.  This launcher is small (a megabyte or two, the
//! floor that bench.py measures and prints), so what wait4() returns here is
//! the command's own peak.

use std::fs;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[allow(dead_code)] // filled in by the kernel; only maxrss is read
#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

/// `struct rusage` of 64-bit Linux: two timevals, then 14 longs, the first
/// of which is ru_maxrss (in KiB).
#[allow(dead_code)]
#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: i64,
    rest: [i64; 13],
}

unsafe extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
}

const EINTR: i32 = 4;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: rss_spawn REPORT_FILE PROGRAM [ARGS...]");
        return ExitCode::from(1);
    }
    let start = Instant::now();
    let child = match Command::new(&args[2]).args(&args[3..]).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("rss_spawn: cannot run {}: {e}", args[2]);
            return ExitCode::from(1);
        }
    };
    let mut status: i32 = 0;
    let mut usage = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        maxrss: 0,
        rest: [0; 13],
    };
    // Reap the child ourselves (std's Child::wait would not give rusage).
    loop {
        // SAFETY: plain system call on our own child with valid pointers.
        let r = unsafe { wait4(child.id() as i32, &mut status, 0, &mut usage) };
        if r >= 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(EINTR) {
            eprintln!("rss_spawn: wait4: {err}");
            return ExitCode::from(1);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Decode the wait status: exited normally, or killed by a signal.
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        -(status & 0x7f)
    };
    if let Err(e) = fs::write(&args[1], format!("{seconds:.6} {} {code}\n", usage.maxrss)) {
        eprintln!("rss_spawn: cannot write {}: {e}", args[1]);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
