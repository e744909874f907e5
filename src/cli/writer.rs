//! Output off the reading thread: a writer thread takes chunks from a
//! queue bounded in bytes and writes them to an fd, so the rings keep
//! being drained while the consumer (a pipe, a terminal, a disk under
//! writeback) stalls. A chunk that does not fit is dropped and its events
//! counted; a blocked fd never holds up a stop (see [`Writer::finish`]).
//! Written buffers come back for reuse ([`Writer::spare`]), a few at most:
//! a fresh buffer per chunk costs an mmap, its page faults and an munmap
//! where the allocator maps large blocks (musl).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tcptracer::tracer::io::{trim, write_all, Short};

struct Chunk {
    buf: Vec<u8>,
    events: u64,
}

#[derive(Default)]
struct Shared {
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// Events in chunks not yet written.
    pending: AtomicU64,
    /// The fd failed (errno), 0 while it works.
    failed: std::sync::atomic::AtomicI32,
    /// Set by `finish` at its deadline: stop retrying.
    abandon: AtomicBool,
    /// Written buffers, emptied, for the next chunks (at most `SPARE`).
    spare: Mutex<Vec<Vec<u8>>>,
    /// The thread has written (or dropped) everything and ended.
    done: Mutex<bool>,
    ended: Condvar,
}

impl Shared {
    fn failed(&self) -> Option<i32> {
        match self.failed.load(Ordering::Acquire) {
            0 => None,
            e => Some(e),
        }
    }
}

/// A writer thread and its queue.
pub struct Writer {
    tx: Sender<Chunk>,
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
    bound: usize,
}

impl Writer {
    /// Write to `fd` from a new thread, queueing at most `bound` bytes.
    /// `on_failed` runs (on the writer thread) when the fd fails, e.g.
    /// EPIPE when the reader of a pipe went away.
    pub fn spawn(fd: RawFd, bound: usize, on_failed: Box<dyn Fn() + Send>) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tcptracer-out".into())
            .spawn(move || run(fd, rx, &s, &*on_failed))?;
        Ok(Writer { tx, shared, thread, bound })
    }

    /// Queue `buf` (holding `events` events). When it does not fit under
    /// the bound, or the fd has failed, it is dropped: returns the events
    /// dropped (0 when queued).
    pub fn send(&self, buf: Vec<u8>, events: u64) -> u64 {
        let len = buf.len();
        if len == 0 {
            return 0;
        }
        let queued = self.shared.queued.load(Ordering::Acquire);
        // A chunk larger than the bound still goes to an empty queue.
        if self.failed().is_some() || (queued > 0 && queued + len > self.bound) {
            return events;
        }
        self.shared.queued.fetch_add(len, Ordering::AcqRel);
        self.shared.pending.fetch_add(events, Ordering::AcqRel);
        if self.tx.send(Chunk { buf, events }).is_err() {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            self.shared.pending.fetch_sub(events, Ordering::AcqRel);
            return events;
        }
        0
    }

    /// An empty buffer a written chunk left, if one is free.
    pub fn spare(&self) -> Option<Vec<u8>> {
        self.shared.spare.lock().ok()?.pop()
    }

    /// Bytes queued and not yet written.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// The errno the fd failed with, if it did.
    pub fn failed(&self) -> Option<i32> {
        self.shared.failed()
    }

    /// Let the thread write what is queued, until `deadline`. Returns the
    /// events left unwritten (still queued at the deadline, or dropped when
    /// the fd failed) and the fd's errno if it failed; a thread still
    /// blocked in `write` is left behind (the process is about to exit).
    pub fn finish(self, deadline: Instant) -> (u64, Option<i32>) {
        let Writer { tx, shared, thread, .. } = self;
        drop(tx);
        let mut done = shared.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            done = shared.ended.wait_timeout(done, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        let ended = *done;
        drop(done);
        shared.abandon.store(true, Ordering::Release);
        if ended {
            let _ = thread.join();
        }
        (shared.pending.load(Ordering::Acquire), shared.failed())
    }
}

/// Queued bytes past which, once the queue is empty again, the freed
/// memory is handed back to the kernel (a stall must not leave the process
/// that much bigger).
const TRIM_AFTER: usize = 256 << 10;

/// Written buffers kept for reuse: one being filled while another is
/// written needs two; the rest of a backlog is freed.
const SPARE: usize = 2;

fn run(fd: RawFd, rx: Receiver<Chunk>, s: &Shared, on_failed: &dyn Fn()) {
    let give_up = || s.abandon.load(Ordering::Acquire);
    let mut most = 0;
    for c in rx.iter() {
        most = most.max(s.queued.load(Ordering::Acquire));
        if s.failed.load(Ordering::Acquire) == 0 && !give_up() {
            match write_all(fd, &c.buf, &give_up) {
                Ok(()) => {
                    s.pending.fetch_sub(c.events, Ordering::AcqRel);
                }
                Err(Short::Failed(e)) => {
                    s.failed.store(e, Ordering::Release);
                    on_failed();
                }
                Err(Short::GaveUp) => {}
            }
        }
        let mut buf = c.buf;
        let len = buf.len();
        match s.spare.lock() {
            Ok(mut spare) if spare.len() < SPARE => {
                buf.clear();
                spare.push(buf);
            }
            _ => drop(buf),
        }
        if s.queued.fetch_sub(len, Ordering::AcqRel) == len && most > TRIM_AFTER {
            most = 0;
            trim();
        }
    }
    *s.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
    s.ended.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pipe(nonblock: bool) -> (RawFd, RawFd) {
        let mut fds = [0; 2];
        let flags = libc::O_CLOEXEC | if nonblock { libc::O_NONBLOCK } else { 0 };
        // SAFETY: fds has room for two fds.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) }, 0);
        (fds[0], fds[1])
    }

    fn close(fd: RawFd) {
        // SAFETY: the test owns fd.
        unsafe { libc::close(fd) };
    }

    fn read_all(fd: RawFd) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: valid buffer.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
            if n <= 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
    }

    #[test]
    fn writes_chunks_in_order() {
        let (r, w) = pipe(false);
        let wr = Writer::spawn(w, 1 << 20, Box::new(|| {})).unwrap();
        for i in 0..100u8 {
            assert_eq!(wr.send(vec![i; 100], 1), 0);
        }
        assert_eq!(wr.finish(Instant::now() + Duration::from_secs(5)), (0, None));
        close(w);
        let got = read_all(r);
        close(r);
        let want: Vec<u8> = (0..100u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn written_buffers_come_back_empty_two_at_most() {
        let (r, w) = pipe(false);
        let wr = Writer::spawn(w, 1 << 20, Box::new(|| {})).unwrap();
        assert!(wr.spare().is_none());
        for i in 0..5u8 {
            let mut b = Vec::with_capacity(4096);
            b.extend_from_slice(&[i; 10]);
            assert_eq!(wr.send(b, 1), 0);
        }
        let t = Instant::now();
        while wr.queued() > 0 {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        // A buffer goes back before its bytes leave `queued`.
        let kept: Vec<Vec<u8>> = std::iter::from_fn(|| wr.spare()).collect();
        assert_eq!(kept.len(), SPARE);
        assert!(kept.iter().all(|b| b.is_empty() && b.capacity() == 4096));
        assert_eq!(wr.finish(Instant::now() + Duration::from_secs(5)), (0, None));
        close(w);
        assert_eq!(read_all(r).len(), 50);
        close(r);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_blocked_fd_never_holds_the_finish() {
        for nonblock in [false, true] {
            let (r, w) = pipe(nonblock);
            let wr = Writer::spawn(w, 256 << 10, Box::new(|| {})).unwrap();
            // Nobody reads: the pipe (64 KiB) fills, then the queue (256 KiB).
            let mut dropped = 0;
            for _ in 0..100 {
                dropped += wr.send(vec![b'x'; 16 << 10], 10);
            }
            assert!(wr.queued() <= 256 << 10, "{}", wr.queued());
            assert!(dropped >= 10 * (100 - (64 + 256) / 16 - 1), "dropped {dropped}");
            let t = Instant::now();
            let (unwritten, _) = wr.finish(Instant::now() + Duration::from_millis(300));
            assert!(t.elapsed() < Duration::from_millis(800), "finish took {:?}", t.elapsed());
            if nonblock {
                // The thread gave up at the deadline: every event is written,
                // dropped or unwritten.
                std::thread::sleep(Duration::from_millis(200));
                let written = read_all(r).len() as u64 / (16 << 10) * 10;
                assert_eq!(written + dropped + unwritten, 1000);
            } else {
                // Still blocked in write(): at most the pipe's 64 KiB went.
                assert!(dropped + unwritten >= 1000 - 50, "{dropped} + {unwritten}");
            }
            close(r);
        }
    }

    #[test]
    fn a_reader_gone_reports_the_failure() {
        let (r, w) = pipe(false);
        close(r);
        let hit = Arc::new(AtomicBool::new(false));
        let h = hit.clone();
        let wr = Writer::spawn(w, 1 << 20, Box::new(move || h.store(true, Ordering::SeqCst))).unwrap();
        assert_eq!(wr.send(b"line\n".to_vec(), 1), 0);
        let t = Instant::now();
        while wr.failed().is_none() {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(wr.failed(), Some(libc::EPIPE));
        assert!(hit.load(Ordering::SeqCst));
        assert_eq!(wr.send(b"more\n".to_vec(), 1), 1, "a failed fd takes nothing");
        assert_eq!(wr.finish(Instant::now() + Duration::from_secs(1)), (1, Some(libc::EPIPE)));
        close(w);
    }
}
