//! tracefs: find it (mounting it if needed), read trace event ids and formats.

use super::LoadError;
use std::ffi::CString;
use std::path::{Path, PathBuf};

const DEFAULT: &str = "/sys/kernel/tracing";

/// A tracefs location. If we mounted it ourselves, it is unmounted on drop.
#[derive(Debug)]
pub struct Tracefs {
    root: PathBuf,
    mounted_by_us: bool,
    /// Event ids already read (each read of tracefs costs a few 100 µs).
    ids: std::sync::Mutex<Vec<(String, u64)>>,
}

/// The tracefs mount point listed in a `/proc/self/mountinfo` text.
pub fn find_in_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <source> <sopts>"
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "tracefs").then(|| PathBuf::from(mount_point.replace("\\040", " ")))
    })
}

impl Tracefs {
    /// Find tracefs, mounting it at /sys/kernel/tracing when no mount exists.
    pub fn open() -> Result<Tracefs, LoadError> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| LoadError::call("reading /proc/self/mountinfo", e))?;
        if let Some(root) = find_in_mountinfo(&mountinfo) {
            return Ok(Tracefs { root, mounted_by_us: false, ids: Default::default() });
        }
        let target = CString::new(DEFAULT).unwrap();
        let fstype = CString::new("tracefs").unwrap();
        // SAFETY: all pointers are valid NUL-terminated strings.
        let r =
            unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(LoadError::Tracefs(format!(
                "tracefs is not mounted and mounting it at {DEFAULT} failed: {e} \
                 (mounting needs CAP_SYS_ADMIN; or mount it first: mount -t tracefs nodev {DEFAULT})"
            )));
        }
        Ok(Tracefs { root: PathBuf::from(DEFAULT), mounted_by_us: true, ids: Default::default() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn event_file(&self, category: &str, name: &str, file: &str) -> Result<String, LoadError> {
        let path = self.root.join("events").join(category).join(name).join(file);
        std::fs::read_to_string(&path).map_err(|e| {
            LoadError::Tracefs(format!(
                "tracepoint {category}:{name} is not available ({}: {e})",
                path.display()
            ))
        })
    }

    /// The perf id of trace event `category:name`.
    pub fn event_id(&self, category: &str, name: &str) -> Result<u64, LoadError> {
        let key = format!("{category}:{name}");
        if let Some(&(_, id)) = self.ids.lock().unwrap().iter().find(|(k, _)| *k == key) {
            return Ok(id);
        }
        let text = self.event_file(category, name, "id")?;
        let id = text.trim().parse().map_err(|_| {
            LoadError::Tracefs(format!("tracepoint {category}:{name}: bad id {:?}", text.trim()))
        })?;
        self.ids.lock().unwrap().push((key, id));
        Ok(id)
    }

    /// Offset and size of a field of trace event `category:name`.
    pub fn field(&self, category: &str, name: &str, field: &str) -> Result<(u32, u32), LoadError> {
        let text = self.event_file(category, name, "format")?;
        parse_format_field(&text, field)
            .ok_or_else(|| LoadError::Tracefs(format!("tracepoint {category}:{name} has no field {field}")))
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if self.mounted_by_us {
            if let Ok(p) = CString::new(self.root.as_os_str().as_encoded_bytes()) {
                // SAFETY: valid path; MNT_DETACH leaves users of the mount unharmed.
                unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Find `field:<type> <field>;\toffset:N;\tsize:M;` in a trace event format.
pub fn parse_format_field(format: &str, field: &str) -> Option<(u32, u32)> {
    for line in format.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else { continue };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next()?;
        let ident = decl.rsplit([' ', '*']).next()?;
        let ident = ident.split('[').next()?;
        if ident != field {
            continue;
        }
        let mut offset = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        return Some((offset?, size?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = "name: sys_exit_accept4\nID: 1234\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n\n\
print fmt: \"0x%lx\", REC->ret\n";

    #[test]
    fn format_fields() {
        assert_eq!(parse_format_field(FORMAT, "ret"), Some((16, 8)));
        assert_eq!(parse_format_field(FORMAT, "__syscall_nr"), Some((8, 4)));
        assert_eq!(parse_format_field(FORMAT, "common_pid"), Some((4, 4)));
        assert_eq!(parse_format_field(FORMAT, "nope"), None);
        assert_eq!(parse_format_field("field:__u8 saddr[4];\toffset:28;\tsize:4;", "saddr"), Some((28, 4)));
        assert_eq!(
            parse_format_field("field:const void * skaddr;\toffset:8;\tsize:8;", "skaddr"),
            Some((8, 8))
        );
        assert_eq!(parse_format_field("field:long ret;\toffset:x;\tsize:8;", "ret"), None);
    }

    #[test]
    fn mountinfo() {
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                  40 22 0:12 / /sys/kernel/tracing rw,relatime shared:5 - tracefs nodev rw\n";
        assert_eq!(find_in_mountinfo(mi), Some(PathBuf::from("/sys/kernel/tracing")));
        assert_eq!(find_in_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n"), None);
        assert_eq!(find_in_mountinfo("garbage\n\n - \n"), None);
    }
}
