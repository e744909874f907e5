//! `--check`: one line per feature, then the backend auto would pick.

use super::die;
use tcptracer::asm::Arch;
use tcptracer::tracer::check;
use tcptracer::tracer::Config;

/// Print what the kernel supports and exit.
pub fn print(cfg: &Config) -> ! {
    let yes_no = |r: Result<(), String>| match r {
        Ok(()) => "yes".to_string(),
        Err(e) => format!("no ({e})"),
    };
    let r = check::report(cfg).unwrap_or_else(|e| die(e));
    println!("{:<18} yes ({} types)", "BTF", r.btf_types);
    let s = r.support.unwrap_or_else(|e| die(e));
    println!("{:<18} {}", "kprobe PMU", s.kprobe_pmu.map_or("no".to_string(), |t| format!("yes (type {t})")));
    println!("{:<18} {}", "kprobe_events", if s.kprobe_events { "yes" } else { "no" });
    println!("{:<18} {}", "fentry/fexit", yes_no(s.fentry));
    println!("{:<18} {}", "tp_btf", yes_no(s.tp_btf));
    println!("{:<18} {}", "tracepoints", yes_no(s.tracepoints));
    println!("{:<18} {}", "ringbuf", if s.ringbuf { "yes" } else { "no" });
    let slots = match tcptracer::transport::slot_rings_arch_refusal(Arch::HOST) {
        Some(why) => format!("no ({why}; {})", if s.ringbuf { "ring buffer" } else { "perf rings" }),
        None if s.slot_rings => "yes".to_string(),
        None => "no (perf rings)".to_string(),
    };
    println!("{:<18} {slots}", "slot rings");
    println!("{:<18} {}", "probe_read_kernel", if s.probe_read_kernel { "yes" } else { "no" });
    println!("{:<18} {}", "backend (auto)", s.auto.name());
    std::process::exit(0)
}
