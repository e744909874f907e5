//! `seeds OUT_DIR [BTF_FILE...]`: write the seed corpora (see `tcptracer_fuzz::seeds`).

fn main() {
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let Some((out, btf)) = args.split_first() else {
        eprintln!("usage: seeds OUT_DIR [BTF_FILE...]");
        std::process::exit(2);
    };
    let btf: Vec<&std::path::Path> = btf.iter().map(|p| p.as_path()).collect();
    if let Err(e) = tcptracer_fuzz::seeds::write_all(out, &btf) {
        eprintln!("seeds: {e}");
        std::process::exit(1);
    }
}
