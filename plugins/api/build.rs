//! Records the compiler's `rustc -V` in `AUDIOSAE_RUSTC_VERSION`: a plugin and the host it is
//! loaded into must come from the same compiler, and the ABI descriptor carries this string.
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| panic!("cannot run `{rustc} -V`"));
    println!("cargo:rustc-env=AUDIOSAE_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
