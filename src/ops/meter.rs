//! Counting the bytes of long work and reporting them as
//! [`Progress`](crate::report::Progress).

use std::cell::Cell;
use std::io::{self, Write};

use crate::report::{Phase, Progress, Report};

/// Counts bytes for one phase and hands each new total to the report.
pub(super) struct Meter<'a> {
    report: &'a dyn Report,
    phase: Phase,
    total: Option<u64>,
    done: Cell<u64>,
}

impl<'a> Meter<'a> {
    /// A meter at 0 of `total` bytes.
    pub(super) fn new(report: &'a dyn Report, phase: Phase, total: Option<u64>) -> Self {
        let m = Meter {
            report,
            phase,
            total,
            done: Cell::new(0),
        };
        m.add(0);
        m
    }

    /// Records `n` more bytes done.
    pub(super) fn add(&self, n: u64) {
        let done = self.done.get().saturating_add(n);
        self.done.set(done);
        self.report.progress(&Progress {
            phase: self.phase,
            done,
            total: self.total,
        });
    }

    /// A writer that passes everything to `out` (or drops it) and counts it.
    pub(super) fn tee<'w>(&'w self, out: Option<&'w mut dyn Write>) -> Tee<'w, 'a> {
        Tee { meter: self, out }
    }
}

/// See [`Meter::tee`].
pub(super) struct Tee<'w, 'a> {
    meter: &'w Meter<'a>,
    out: Option<&'w mut dyn Write>,
}

impl Write for Tee<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.out.as_mut() {
            Some(o) => o.write(buf)?,
            None => buf.len(),
        };
        self.meter.add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }
}
