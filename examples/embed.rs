//! Embedding the tracer as a library: trace connections to or from one
//! port and print them with the typed event fields.
//!
//! `cargo run --release --example embed -- 443` (as root), then make a
//! connection to or from port 443.

use tcptracer::tracer::event::Kind;
use tcptracer::tracer::Tracer;

fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(443);
    let mut tracer = match Tracer::builder().port(port).failed(true).start() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("embed: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("tracing port {port} with the {} backend; Ctrl-C to end", tracer.backend.name());
    loop {
        let lost = tracer
            .poll(100, &mut |e| {
                let what = e.kind.map_or("unknown", Kind::name);
                println!(
                    "{what:<8} pid {:<7} uid {:<5} {:<15} {}:{} -> {}:{}{}",
                    e.pid,
                    e.uid,
                    String::from_utf8_lossy(e.comm()),
                    e.saddr(),
                    e.sport,
                    e.daddr(),
                    e.dport,
                    if e.kind == Some(Kind::Failed) {
                        format!(" (errno {})", e.error)
                    } else {
                        String::new()
                    }
                );
            })
            .unwrap_or_else(|e| {
                eprintln!("embed: {e}");
                std::process::exit(1)
            });
        if lost > 0 {
            eprintln!("lost {lost} events");
        }
    }
}
