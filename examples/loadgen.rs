//! Loopback TCP load: N client threads connect and close as fast as they
//! can for S seconds, each against its own accepting thread. The server
//! closes first, so TIME_WAIT stays on its side and client ports recycle.
//!
//! `cargo run --release --example loadgen -- [THREADS] [SECONDS] [4|6]`
//! prints `connections N seconds S rate R/s`.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1);
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let host = if args.get(2).map(String::as_str) == Some("6") { "[::1]:0" } else { "127.0.0.1:0" };
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..threads {
        let listener = TcpListener::bind(host).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for s in listener.incoming() {
                drop(s);
            }
        });
        let (stop, total) = (stop.clone(), total.clone());
        workers.push(thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut s = TcpStream::connect(addr).unwrap();
                let _ = s.read(&mut [0u8; 1]); // EOF: the server closed
                drop(s);
                n += 1;
            }
            total.fetch_add(n, Ordering::Relaxed);
        }));
    }
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = total.load(Ordering::Relaxed);
    println!("connections {n} seconds {secs:.2} rate {:.0}/s", n as f64 / secs);
}
