//! Passes the target triple the binary is built for to the code, for `--version`.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=MASTER_PINGER_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
