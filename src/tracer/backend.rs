//! Backends: which kernel hooks carry the probes. A backend turns BTF
//! offsets, filters and map fds into [`Probe`]s; the tracer loads and
//! attaches them without knowing which backend made them.
//!
//! | event | tracepoint | kprobe | fentry |
//! |---|---|---|---|
//! | connect start | tp_btf `inet_sock_set_state` CLOSE→SYN_SENT | kprobe+kretprobe `tcp_v{4,6}_connect` | fentry+fexit `tcp_v{4,6}_connect` |
//! | C, X | tp_btf `inet_sock_set_state` | kprobe `tcp_set_state` | fentry `tcp_set_state` |
//! | A | `syscalls:sys_exit_accept{,4}` | same | same |
//! | X whose run was skipped | tp_btf `tcp_destroy_sock` | kprobe `tcp_v4_destroy_sock` | fentry `tcp_v4_destroy_sock` |

use super::offsets::{FdOffsets, SockOffsets};
use super::probes::{self, ConnectHook, Filters, MapFds, StateHook};
use super::{Backend, Error};
use crate::asm::{Arch, Program};
use crate::btf::{Btf, BtfError, Kind as BtfKind};
use crate::loader::prog::{ATTACH_TRACE_FENTRY, ATTACH_TRACE_FEXIT, ATTACH_TRACE_RAW_TP};
use crate::loader::tracefs::Tracefs;
use crate::loader::{LoadError, ProgType};

/// Every BTF name a backend looks up, fetched in one pass over the types.
pub const BTF_NAMES: &[(&str, BtfKind)] = &[
    ("sock", BtfKind::Struct),
    ("net", BtfKind::Struct),
    ("inet_sock", BtfKind::Struct),
    ("task_struct", BtfKind::Struct),
    ("files_struct", BtfKind::Struct),
    ("fdtable", BtfKind::Struct),
    ("file", BtfKind::Struct),
    ("socket", BtfKind::Struct),
    ("socket_alloc", BtfKind::Struct),
    ("inode", BtfKind::Struct),
    ("pt_regs", BtfKind::Struct),
    // Present from 6.1, where tracing programs may use hash maps that are
    // not preallocated (see `Tracer::start`).
    ("bpf_mem_alloc", BtfKind::Struct),
    ("btf_trace_inet_sock_set_state", BtfKind::Typedef),
    ("btf_trace_tcp_destroy_sock", BtfKind::Typedef),
    ("tcp_v4_destroy_sock", BtfKind::Func),
    ("tcp_v4_connect", BtfKind::Func),
    ("tcp_v6_connect", BtfKind::Func),
    ("tcp_set_state", BtfKind::Func),
];

/// Where a program attaches.
pub enum Hook {
    /// By BTF id through BPF_RAW_TRACEPOINT_OPEN (tp_btf, fentry, fexit).
    BtfId { btf_id: u32, attach_type: u32 },
    /// Perf tracepoints `category:name`; one program on each.
    Tracepoints(Vec<(&'static str, &'static str)>),
    /// kprobes (`false`) or kretprobes (`true`) on these functions.
    Kprobes(Vec<(&'static str, bool)>),
}

/// One generated program and where it goes.
pub struct Probe {
    pub name: &'static str,
    pub prog_type: ProgType,
    pub hook: Hook,
    pub program: Program,
    /// For messages: e.g. "tp_btf inet_sock_set_state".
    pub what: String,
}

impl Probe {
    pub fn attach_type(&self) -> u32 {
        match self.hook {
            Hook::BtfId { attach_type, .. } => attach_type,
            _ => 0,
        }
    }

    pub fn btf_id(&self) -> u32 {
        match self.hook {
            Hook::BtfId { btf_id, .. } => btf_id,
            _ => 0,
        }
    }
}

/// What every backend gets to build its probes from.
pub struct Context<'a> {
    /// Struct offsets.
    pub btf: &'a Btf,
    /// The running kernel's BTF, for attach ids and prototypes (None: no
    /// kernel BTF, so nothing can attach by BTF id).
    pub ids: Option<&'a Btf>,
    pub tracefs: &'a Tracefs,
    pub filters: &'a Filters,
    pub maps: MapFds,
}

impl Context<'_> {
    fn ids(&self) -> Result<&Btf, Error> {
        self.ids.ok_or_else(|| Error::Unsupported {
            backend: Backend::Auto,
            why: "no kernel BTF (/sys/kernel/btf/vmlinux) to attach by BTF id".into(),
        })
    }
}

pub fn build(kind: Backend, cx: &Context) -> Result<Vec<Probe>, Error> {
    let sock = SockOffsets::from_btf(cx.btf)?;
    let mut probes = match kind {
        Backend::Fentry => fentry(cx, &sock)?,
        Backend::Kprobe => kprobe(cx, &sock)?,
        Backend::Tracepoint | Backend::Auto => vec![
            Probe {
                name: "tcpt_state",
                prog_type: ProgType::Tracing,
                hook: Hook::BtfId {
                    btf_id: cx.ids()?.find("btf_trace_inet_sock_set_state", BtfKind::Typedef)?,
                    attach_type: ATTACH_TRACE_RAW_TP,
                },
                program: probes::state_program(&sock, StateHook::TpBtf, cx.filters, &cx.maps)?,
                what: "tp_btf inet_sock_set_state".into(),
            },
            Probe {
                name: "tcpt_destroy",
                prog_type: ProgType::Tracing,
                hook: Hook::BtfId {
                    btf_id: cx.ids()?.find("btf_trace_tcp_destroy_sock", BtfKind::Typedef)?,
                    attach_type: ATTACH_TRACE_RAW_TP,
                },
                program: probes::destroy_program(&sock, StateHook::TpBtf, cx.filters, &cx.maps)?,
                what: "tp_btf tcp_destroy_sock".into(),
            },
        ],
    };
    probes.push(accept(cx, &sock)?);
    Ok(probes)
}

/// A from the accept syscalls' exits, in every backend: it sees accepts
/// that were blocked before tracing started and has no kretprobe
/// `maxactive` limit, unlike a return probe on `inet_csk_accept`.
fn accept(cx: &Context, sock: &SockOffsets) -> Result<Probe, Error> {
    let fds = FdOffsets::from_btf(cx.btf)?;
    let mut ret_off = None;
    for name in ["sys_exit_accept4", "sys_exit_accept"] {
        let (off, size) = cx.tracefs.field("syscalls", name, "ret")?;
        if size != 8 || ret_off.is_some_and(|o| o != off) {
            return Err(LoadError::Tracefs(format!(
                "syscalls:{name}: unexpected ret field at {off} size {size}"
            ))
            .into());
        }
        ret_off = Some(off);
    }
    Ok(Probe {
        name: "tcpt_accept",
        prog_type: ProgType::Tracepoint,
        hook: Hook::Tracepoints(vec![("syscalls", "sys_exit_accept4"), ("syscalls", "sys_exit_accept")]),
        program: probes::accept_program(sock, &fds, ret_off.unwrap(), cx.filters, &cx.maps)?,
        what: "tracepoints syscalls:sys_exit_accept{,4}".into(),
    })
}

/// The connect functions to probe: only the filtered family's (`-4`
/// still sees IPv4-mapped connects through the inner `tcp_v4_connect`;
/// the event filter drops them, as they are IP 6 flows).
fn connect_funcs(f: &Filters) -> Vec<&'static str> {
    match f.family {
        Some(4) => vec!["tcp_v4_connect"],
        Some(_) => vec!["tcp_v6_connect"],
        None => vec!["tcp_v4_connect", "tcp_v6_connect"],
    }
}

/// `pt_regs` offsets of the first two arguments and the return value.
fn pt_regs(btf: &Btf) -> Result<(u32, u32, u32), Error> {
    pt_regs_of(btf, Arch::HOST)
}

/// [`pt_regs`] for `arch`, from BTF.
/// - x86-64: `di`, `si` and `ax`.
/// - arm64: `regs[0]`, `regs[1]` and `regs[0]`. Its `struct pt_regs` starts
///   with an anonymous union of `struct user_pt_regs user_regs` and an
///   anonymous struct `{ u64 regs[31]; u64 sp; u64 pc; u64 pstate; }`;
///   the member path finds `regs` through both anonymous levels.
pub fn pt_regs_of(btf: &Btf, arch: Arch) -> Result<(u32, u32, u32), Error> {
    match arch {
        Arch::X86_64 => {
            let reg = |r: &str| btf.member(&format!("pt_regs.{r}")).and_then(|m| m.plain_offset());
            Ok((reg("di")?, reg("si")?, reg("ax")?))
        }
        Arch::Aarch64 => {
            let regs = btf.member("pt_regs.regs")?;
            let base = regs.plain_offset()?;
            let (elem, n) = btf.array_of(regs.type_id)?;
            let size = btf.size_of(elem)?;
            if size != 8 || n < 2 {
                return Err(BtfError::BadType {
                    id: regs.type_id,
                    msg: format!("pt_regs.regs is {n} elements of {size} bytes, not at least 2 of 8"),
                }
                .into());
            }
            Ok((base, base + 8, base))
        }
    }
}

fn kprobe(cx: &Context, sock: &SockOffsets) -> Result<Vec<Probe>, Error> {
    let (di, si, ax) = pt_regs(cx.btf)?;
    let hook = ConnectHook::Kprobe { arg0: di, ret: ax };
    let connects = || connect_funcs(cx.filters).into_iter().map(|f| (f, false)).collect::<Vec<_>>();
    let returns = connects().into_iter().map(|(f, _)| (f, true)).collect();
    Ok(vec![
        Probe {
            name: "tcpt_conn_in",
            prog_type: ProgType::Kprobe,
            hook: Hook::Kprobes(connects()),
            program: probes::connect_entry_program(sock, hook, cx.filters, &cx.maps)?,
            what: format!("kprobes {}", connect_funcs(cx.filters).join(", ")),
        },
        Probe {
            name: "tcpt_conn_out",
            prog_type: ProgType::Kprobe,
            hook: Hook::Kprobes(returns),
            program: probes::connect_exit_program(hook, 0, &cx.maps)?,
            what: format!("kretprobes {}", connect_funcs(cx.filters).join(", ")),
        },
        Probe {
            name: "tcpt_state",
            prog_type: ProgType::Kprobe,
            hook: Hook::Kprobes(vec![("tcp_set_state", false)]),
            program: probes::state_program(
                sock,
                StateHook::Kprobe { arg0: di, arg1: si },
                cx.filters,
                &cx.maps,
            )?,
            what: "kprobe tcp_set_state".into(),
        },
        Probe {
            name: "tcpt_destroy",
            prog_type: ProgType::Kprobe,
            hook: Hook::Kprobes(vec![("tcp_v4_destroy_sock", false)]),
            program: probes::destroy_program(
                sock,
                StateHook::Kprobe { arg0: di, arg1: si },
                cx.filters,
                &cx.maps,
            )?,
            what: "kprobe tcp_v4_destroy_sock".into(),
        },
    ])
}

/// The ctx slot where fexit finds `func`'s return value: right after its
/// arguments, so their count comes from the running kernel's prototype
/// (`inet_csk_accept` went from 4 arguments to 2 in 6.10).
pub fn fexit_ret_slot(btf: &Btf, func: &str) -> Result<u32, Error> {
    Ok(btf.func_proto(func)?.params.len() as u32)
}

fn fentry(cx: &Context, sock: &SockOffsets) -> Result<Vec<Probe>, Error> {
    let ids = cx.ids()?;
    let func = |name: &str| ids.find(name, BtfKind::Func);
    let mut out = Vec::new();
    for (f, entry, exit) in [
        ("tcp_v4_connect", "tcpt_conn4_in", "tcpt_conn4_out"),
        ("tcp_v6_connect", "tcpt_conn6_in", "tcpt_conn6_out"),
    ] {
        if !connect_funcs(cx.filters).contains(&f) {
            continue;
        }
        let id = func(f)?;
        let nargs = fexit_ret_slot(ids, f)?;
        out.push(Probe {
            name: entry,
            prog_type: ProgType::Tracing,
            hook: Hook::BtfId { btf_id: id, attach_type: ATTACH_TRACE_FENTRY },
            program: probes::connect_entry_program(sock, ConnectHook::Fentry, cx.filters, &cx.maps)?,
            what: format!("fentry {f}"),
        });
        out.push(Probe {
            name: exit,
            prog_type: ProgType::Tracing,
            hook: Hook::BtfId { btf_id: id, attach_type: ATTACH_TRACE_FEXIT },
            program: probes::connect_exit_program(ConnectHook::Fentry, nargs, &cx.maps)?,
            what: format!("fexit {f}"),
        });
    }
    out.push(Probe {
        name: "tcpt_state",
        prog_type: ProgType::Tracing,
        hook: Hook::BtfId { btf_id: func("tcp_set_state")?, attach_type: ATTACH_TRACE_FENTRY },
        program: probes::state_program(sock, StateHook::Fentry, cx.filters, &cx.maps)?,
        what: "fentry tcp_set_state".into(),
    });
    out.push(Probe {
        name: "tcpt_destroy",
        prog_type: ProgType::Tracing,
        hook: Hook::BtfId { btf_id: func("tcp_v4_destroy_sock")?, attach_type: ATTACH_TRACE_FENTRY },
        program: probes::destroy_program(sock, StateHook::Fentry, cx.filters, &cx.maps)?,
        what: "fentry tcp_v4_destroy_sock".into(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::pt_regs_of;
    use crate::asm::Arch;
    use crate::btf::tests::encoder::Builder;
    use crate::btf::Btf;

    /// x86-64's `struct pt_regs` (the registers up to `orig_ax`) and
    /// arm64's, whose `regs[31]` sits in an anonymous struct in an
    /// anonymous union beside `struct user_pt_regs user_regs`; `elem` is
    /// the size of arm64's register type.
    fn btf(arm64_elem: u32) -> Btf {
        let mut b = Builder::new();
        let u64_ = b.int("long unsigned int", 8, 64, 0, false);
        let int = b.int("int", 4, 32, 0, true);
        let x86 = [
            "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
            "orig_ax",
        ];
        let members: Vec<_> = x86.iter().enumerate().map(|(i, n)| (*n, u64_, i as u32 * 64, 0)).collect();
        b.struct_("pt_regs", 168, &members);

        let elem =
            if arm64_elem == 8 { u64_ } else { b.int("unsigned int", arm64_elem, arm64_elem * 8, 0, false) };
        let regs = b.array(elem, int, 31);
        let tail = |r| {
            [
                ("regs", r, 0, 0),
                ("sp", u64_, 31 * 64, 0),
                ("pc", u64_, 32 * 64, 0),
                ("pstate", u64_, 33 * 64, 0),
            ]
        };
        let user = b.struct_("user_pt_regs", 272, &tail(regs));
        let anon = b.struct_("", 272, &tail(regs));
        let un = b.union_("", 272, &[("user_regs", user, 0, 0), ("", anon, 0, 0)]);
        b.struct_(
            "pt_regs",
            336,
            &[("", un, 0, 0), ("orig_x0", u64_, 272 * 8, 0), ("syscallno", int, 280 * 8, 0)],
        );
        Btf::from_bytes(b.build()).unwrap()
    }

    #[test]
    fn pt_regs_per_arch() {
        // Two structs share the name here; each arch's path resolves in one only.
        let b = btf(8);
        assert_eq!(pt_regs_of(&b, Arch::X86_64).unwrap(), (112, 104, 80));
        assert_eq!(pt_regs_of(&b, Arch::Aarch64).unwrap(), (0, 8, 0));
        let e = pt_regs_of(&btf(4), Arch::Aarch64).unwrap_err().to_string();
        assert!(e.contains("31 elements of 4 bytes"), "{e}");
    }
}
