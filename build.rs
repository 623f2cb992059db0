//! Build-time switches for the tests: `NCPC_TEST_POSTGRES` (an admin URL of a Postgres
//! server) turns on the tests that need one; without it they are marked ignored, so a run
//! says they did not run instead of passing them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ncpc_postgres)");
    println!("cargo::rerun-if-env-changed=NCPC_TEST_POSTGRES");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("NCPC_TEST_POSTGRES").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=ncpc_postgres");
    }
}
