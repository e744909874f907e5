//! Kernel struct offsets the probes need, read from BTF.

use crate::btf::{Btf, BtfError, Member};

/// Where a field lives: byte offset and size, or a bitfield.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub off: u32,
    pub size: u32,
    /// (bit offset from `off`, bit count) when the field is a bitfield; then
    /// `off` is 4-byte aligned and `size` is 4.
    pub bits: Option<(u32, u32)>,
}

impl Field {
    fn plain(m: &Member, path: &str, want: &[u32]) -> Result<Field, BtfError> {
        let off = m.plain_offset()?;
        if !want.contains(&m.size) {
            return Err(BtfError::BadPath {
                path: path.to_string(),
                msg: format!("unexpected size {} (want {want:?})", m.size),
            });
        }
        Ok(Field { off, size: m.size, bits: None })
    }

    /// A scalar that may be a bitfield on some kernels (`sock.sk_protocol`).
    fn scalar(m: &Member, path: &str) -> Result<Field, BtfError> {
        match m.bitfield {
            None => Field::plain(m, path, &[1, 2, 4]),
            Some(bf) => {
                let word = bf.bit_offset / 32 * 4;
                let shift = bf.bit_offset - word * 8;
                if shift + bf.bits > 32 {
                    return Err(BtfError::BadPath {
                        path: path.to_string(),
                        msg: "bitfield straddles a 32-bit word".into(),
                    });
                }
                Ok(Field { off: word, size: 4, bits: Some((shift, bf.bits)) })
            }
        }
    }
}

/// `struct sock` fields used by every probe.
#[derive(Clone, Debug)]
pub struct SockOffsets {
    pub daddr: u32,
    pub rcv_saddr: u32,
    pub dport: u32,
    pub num: u32,
    pub family: u32,
    /// `skc_state` (u8): the state before a `tcp_set_state()` call.
    pub state: u32,
    /// Absent without CONFIG_IPV6.
    pub v6: Option<(u32, u32)>, // (v6_daddr, v6_rcv_saddr)
    /// `skc_net.net` and `net.ns.inum`; absent without CONFIG_NET_NS.
    pub netns: Option<(u32, u32)>,
    pub protocol: Field,
    /// `sock.sk_lock.owned`: non-zero while a task holds the socket lock.
    pub lock_owned: u32,
    /// `sock.sk_socket`: NULL while a connection waits in an accept queue.
    pub sk_socket: u32,
    /// `sock.sk_err` (int): the error a failed connect ended with.
    pub sk_err: u32,
    /// `inet_sock.inet_sport` (network order). Unlike `skc_num`, which
    /// `inet_put_port()` zeroes before the state moves to CLOSE, it stays set.
    pub inet_sport: u32,
    /// The socket inode's `i_ino`, from the `struct socket` (which
    /// `struct socket_alloc` places before its inode): the socket's identity.
    pub socket_ino: u32,
    /// `tcp_sock.bytes_acked` and `tcp_sock.bytes_received` (u64; the
    /// `struct sock` of a TCP socket is its `struct tcp_sock`).
    pub bytes_acked: u32,
    pub bytes_received: u32,
}

/// The chain current task → fd table → file → socket → sock.
#[derive(Clone, Debug)]
pub struct FdOffsets {
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_private_data: u32,
    pub socket_file: u32,
    pub socket_sk: u32,
}

fn plain(btf: &Btf, path: &str, want: &[u32]) -> Result<u32, BtfError> {
    Ok(Field::plain(&btf.member(path)?, path, want)?.off)
}

fn optional(r: Result<u32, BtfError>) -> Result<Option<u32>, BtfError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(BtfError::NoMember { .. }) | Err(BtfError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Offset of the inode number from a `struct socket`.
fn socket_ino(btf: &Btf) -> Result<u32, BtfError> {
    let socket = btf.member("socket_alloc.socket")?.plain_offset()?;
    let ino = plain(btf, "socket_alloc.vfs_inode.i_ino", &[8])?;
    Ok(ino - socket)
}

impl SockOffsets {
    pub fn from_btf(btf: &Btf) -> Result<SockOffsets, BtfError> {
        let c = "sock.__sk_common.";
        let f = |name: &str, want: &[u32]| plain(btf, &format!("{c}{name}"), want);
        let v6 = match (optional(f("skc_v6_daddr", &[16]))?, optional(f("skc_v6_rcv_saddr", &[16]))?) {
            (Some(d), Some(s)) => Some((d, s)),
            _ => None,
        };
        let netns = match optional(f("skc_net.net", &[8]))? {
            Some(net) => Some((net, plain(btf, "net.ns.inum", &[4])?)),
            None => None,
        };
        let protocol = Field::scalar(&btf.member("sock.sk_protocol")?, "sock.sk_protocol")?;
        Ok(SockOffsets {
            daddr: f("skc_daddr", &[4])?,
            rcv_saddr: f("skc_rcv_saddr", &[4])?,
            dport: f("skc_dport", &[2])?,
            num: f("skc_num", &[2])?,
            family: f("skc_family", &[2])?,
            state: f("skc_state", &[1])?,
            v6,
            netns,
            protocol,
            lock_owned: plain(btf, "sock.sk_lock.owned", &[4])?,
            inet_sport: plain(btf, "inet_sock.inet_sport", &[2])?,
            sk_socket: plain(btf, "sock.sk_socket", &[8])?,
            sk_err: plain(btf, "sock.sk_err", &[4])?,
            socket_ino: socket_ino(btf)?,
            bytes_acked: plain(btf, "tcp_sock.bytes_acked", &[8])?,
            bytes_received: plain(btf, "tcp_sock.bytes_received", &[8])?,
        })
    }

    /// The byte range of `struct sock_common` the event needs, so a
    /// probe-read backend can copy it with one call.
    pub fn common_span(&self) -> (u32, u32) {
        let mut lo =
            self.daddr.min(self.rcv_saddr).min(self.dport).min(self.num).min(self.family).min(self.state);
        let mut hi = [
            (self.daddr, 4),
            (self.rcv_saddr, 4),
            (self.dport, 2),
            (self.num, 2),
            (self.family, 2),
            (self.state, 1),
        ]
        .iter()
        .map(|(o, s)| o + s)
        .max()
        .unwrap();
        let mut extend = |o: u32, s: u32| {
            lo = lo.min(o);
            hi = hi.max(o + s);
        };
        if let Some((d, s)) = self.v6 {
            extend(d, 16);
            extend(s, 16);
        }
        if let Some((net, _)) = self.netns {
            extend(net, 8);
        }
        (lo, hi)
    }
}

impl FdOffsets {
    pub fn from_btf(btf: &Btf) -> Result<FdOffsets, BtfError> {
        Ok(FdOffsets {
            task_files: plain(btf, "task_struct.files", &[8])?,
            files_fdt: plain(btf, "files_struct.fdt", &[8])?,
            fdt_max_fds: plain(btf, "fdtable.max_fds", &[4])?,
            fdt_fd: plain(btf, "fdtable.fd", &[8])?,
            file_private_data: plain(btf, "file.private_data", &[8])?,
            socket_file: plain(btf, "socket.file", &[8])?,
            socket_sk: plain(btf, "socket.sk", &[8])?,
        })
    }
}
