//! `tcptracer`: the command line. `main` runs its steps: arguments and
//! configuration, start, the loop that prints events, the summary at exit.

/// `eprintln!` without its panic when stderr is closed or broken.
macro_rules! note {
    ($($t:tt)*) => { tcptracer::tracer::io::say(&format!($($t)*)) };
}

mod cli;

use cli::exit::Ended;
use cli::output::Format;
use cli::printer::Printer;
use cli::writer::Writer;
use cli::{args, die, signals};
use std::time::Instant;
use tcptracer::tracer::io::say;
use tcptracer::tracer::{KernelLosses, Tracer};
use tcptracer::transport::Wake;

fn main() {
    let args = args::parse();
    let cfg = args::config(&args);
    if args.check {
        cli::check::print(&cfg);
    }
    let mut tracer = cli::start::start(&cfg);
    let mut p = open_output(&args, cfg.debug);
    let end = run(&mut tracer, &mut p);
    cli::exit::finish(tracer, p, end, cfg.debug, args.json)
}

/// The writer thread on stdout and the printer that feeds it, the banner
/// (and the table's header) already queued.
fn open_output(args: &args::Args, debug: bool) -> Printer {
    let queue = args
        .queue
        .as_deref()
        .map_or(args::DEFAULT_QUEUE_BYTES, |q| args::queue_bytes(q).unwrap_or_else(|e| die(e)));
    let out = Writer::spawn(1, queue, Box::new(signals::request_stop))
        .unwrap_or_else(|e| die(format!("output thread: {e}")));
    if debug {
        note!("output queue: at most {} KiB", queue >> 10);
    }
    let mut fmt = Format::new(args.verbose, args.netns.is_some());
    (fmt.timestamp, fmt.uid, fmt.error, fmt.exe) = (args.timestamp, args.print_uid, args.failed, args.wide);
    fmt.lifetime = args.lifetime;
    let mut p = Printer::new(fmt, args.json, out);
    if let Some(s) = &args.summary {
        let seconds = cli::summary::parse_seconds(s).unwrap_or_else(|e| die(e));
        p.summary = Some(cli::summary::Summary::new(seconds, Instant::now()));
    }
    p.banner();
    p
}

/// Print events until a stop is asked for (a signal, or stdout gone), then
/// detach and print what is left; say on stderr what was lost meanwhile.
fn run(tracer: &mut Tracer, p: &mut Printer) -> Ended {
    let mut lost_total = 0u64;
    let mut dropped_told = 0u64;
    let mut bad_told = 0u64;
    let mut dropped_counted = 0u64;
    // From zero, not from a first reading: the counters are the tracer's
    // own (new maps, programs and probes), and losses counted between the
    // attach and a first reading here (the banner is out by then) must be
    // reported live too, not only in the exit summary.
    let mut kernel = KernelLosses::default();
    let mut last_check = Instant::now();
    // The rings wake us at their watermark; below it we poll: every 10 ms
    // while events flow, backing off to 100 ms when idle, so a trickle is
    // printed promptly without a wakeup per event. An event held for time
    // order is printed as soon as its window has passed.
    let mut timeout = 1;
    let stop_at = loop {
        let stopping = signals::stopping();
        if let Some(s) = &p.summary {
            // An interval ends on time even when no event comes.
            timeout = timeout.min(s.ms_left(Instant::now()));
        }
        if !stopping {
            match tracer.wait(timeout) {
                Ok(Wake::Woken) if !signals::stopping() && stdout_gone() => signals::request_stop(),
                Ok(_) => {}
                Err(e) => die(e),
            }
        }
        let mut lost = 0u64;
        p.now = Instant::now();
        let r = if stopping {
            // Detach first: what the rings hold then is all there is.
            tracer.stop(&mut |e| p.event(e), &mut |n| lost += n)
        } else {
            tracer.drain(&mut |e| p.event(e), &mut |n| lost += n)
        };
        p.flush();
        let events = *r.as_ref().unwrap_or(&0);
        timeout = match (events, tracer.next_release_ms()) {
            (0, None) => (timeout * 2).min(100),
            (0, Some(ms)) => ms,
            _ => 10,
        };
        if lost > 0 {
            lost_total += lost;
            note!("Possibly lost {lost} events");
            if let Some(s) = &mut p.summary {
                s.lost += lost;
            }
        }
        if let Err(e) = r {
            note!("tcptracer: {e}");
        }
        let interval_due = p.summary.as_ref().is_some_and(|s| s.is_due(p.now));
        if stopping || interval_due || last_check.elapsed() >= std::time::Duration::from_secs(1) {
            last_check = Instant::now();
            let now = tracer.kernel_losses();
            report_kernel_losses(&kernel, &now);
            if let Some(s) = &mut p.summary {
                // The interval's losses: what the notes below and above report.
                s.lost += now.ring_full.saturating_sub(kernel.ring_full)
                    + now.total().saturating_sub(kernel.total())
                    + tracer.undecodable().saturating_sub(bad_told)
                    + p.dropped.saturating_sub(dropped_counted);
                s.skipped += now.skipped().saturating_sub(kernel.skipped());
                dropped_counted = p.dropped;
            }
            kernel = now;
            if tracer.undecodable() > bad_told {
                note!("Possibly lost {} events: undecodable records", tracer.undecodable() - bad_told);
                bad_told = tracer.undecodable();
            }
            if p.dropped > dropped_told && p.out.failed().is_none() {
                note!(
                    "Possibly lost {} events: output queue full (stdout too slow)",
                    p.dropped - dropped_told
                );
                dropped_told = p.dropped;
            }
        }
        p.end_interval(p.now, stopping);
        if stopping {
            break Instant::now();
        }
    };
    Ended { stop_at, lost: lost_total, kernel }
}

/// stdout reports an error or hang-up: the reader of the pipe went away
/// (`tcptracer | head`), or the terminal hung up.
fn stdout_gone() -> bool {
    let mut p = libc::pollfd { fd: 1, events: 0, revents: 0 };
    // SAFETY: one valid pollfd; timeout 0.
    unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0 }
}

/// Say on stderr what the kernel side lost since the last report.
fn report_kernel_losses(before: &KernelLosses, now: &KernelLosses) {
    let causes = [
        (now.output_failed - before.output_failed, "events: BPF output failed"),
        (now.ring_full - before.ring_full, "events: ring buffer full"),
        (now.untracked - before.untracked, "sockets untracked: map update failed"),
        (now.no_port - before.no_port, "events: socket without a port"),
    ];
    for (n, what) in causes {
        if n > 0 {
            say(&format!("Possibly lost {n} {what}"));
        }
    }
    for (n, what) in [
        (now.recursion_misses - before.recursion_misses, "probe runs (it fired inside itself)"),
        (now.kprobe_missed - before.kprobe_missed, "kprobe hits (kprobe_profile)"),
    ] {
        if n > 0 {
            say(&format!("Note: the kernel skipped {n} {what}; an event may be missing"));
        }
    }
}
