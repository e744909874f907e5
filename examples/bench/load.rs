//! The load: the `loadgen` example (loopback connect/accept/close) and its summary line.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::Cfg;
use crate::proc::Proc;
use crate::sys::R;

#[derive(Clone, Debug, Default)]
pub struct Load {
    pub conns: u64,
    pub rate: f64,
    pub errors: u64,
    pub ports: Vec<u16>,
}

/// Start `threads` client/server pairs for `secs` at `rate` conn/s (0: unpaced).
pub fn loadgen_spawn(cfg: &Cfg, threads: usize, secs: f64, rate: f64, v6: bool) -> R<Proc> {
    let mut c = Command::new(&cfg.loadgen);
    c.args([
        "--threads",
        &threads.to_string(),
        "--seconds",
        &format!("{secs}"),
        "--rate",
        &format!("{rate}"),
    ]);
    if v6 {
        c.arg("--ipv6");
    }
    if cfg.pin {
        c.arg("--pin");
    }
    c.stdin(Stdio::null()).stdout(Stdio::piped());
    Proc::spawn("loadgen", &mut c)
}

pub fn loadgen_finish(p: &mut Proc, secs: f64) -> R<Load> {
    let st = p.wait_for(Duration::from_secs_f64(secs + 20.0));
    let Some(st) = st else {
        return Err("loadgen did not finish in time".into());
    };
    let mut out = String::new();
    if let Some(mut o) = p.child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if !st.success() {
        return Err(format!("loadgen failed ({st}): {out}"));
    }
    parse_load(&out)
}

fn parse_load(line: &str) -> R<Load> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let kv: BTreeMap<&str, &str> = t.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0], c[1])).collect();
    let get = |k: &str| kv.get(k).copied().ok_or_else(|| format!("loadgen output without {k}: {line:?}"));
    let num = |k: &str| -> R<f64> {
        get(k)?.trim_end_matches("/s").parse().map_err(|_| format!("loadgen {k}: {line:?}"))
    };
    Ok(Load {
        conns: num("connections")? as u64,
        rate: num("rate")?,
        errors: num("errors")? as u64,
        ports: get("ports")?.split(',').filter_map(|p| p.parse().ok()).collect(),
    })
}
