//! Embeds libtorch's directory as an rpath so the binaries, tests and examples run without
//! LD_LIBRARY_PATH. `DEP_TCH_LIBTORCH_LIB` is exported by torch-sys, a direct dependency.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
