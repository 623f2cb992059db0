//! Build-time work:
//! - switches for the tests: `NCPC_TEST_POSTGRES` (an admin URL of a Postgres server) turns
//!   on the tests that need one, `NCPC_TEST_BROWSER=1` the browser tests (Chromium and
//!   playwright-core installed); without them those tests are marked ignored, so a run says
//!   they did not run instead of passing them;
//! - the web pages' files (`ui/`: HTML, CSS, JS and the vendored KaTeX and uPlot from npm) are
//!   listed for `include_bytes!`, so the binary serves them with nothing fetched at run time.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ncpc_postgres)");
    println!("cargo::rerun-if-env-changed=NCPC_TEST_POSTGRES");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("NCPC_TEST_POSTGRES").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=ncpc_postgres");
    }
    println!("cargo::rustc-check-cfg=cfg(ncpc_browser)");
    println!("cargo::rerun-if-env-changed=NCPC_TEST_BROWSER");
    if std::env::var("NCPC_TEST_BROWSER").is_ok_and(|v| v.trim() == "1") {
        println!("cargo::rustc-cfg=ncpc_browser");
    }
    embed_ui();
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn embed_ui() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ui = root.join("ui");
    println!("cargo::rerun-if-changed=ui");
    let mut list = Vec::new();
    files(&ui, &mut list);
    let mut code = String::from(
        "/// The embedded files of `ui/`: (path under ui/, contents).\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for p in &list {
        let rel = p.strip_prefix(&ui).expect("under ui/");
        let rel = rel.to_string_lossy().replace('\\', "/");
        println!("cargo::rerun-if-changed={}", p.display());
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            p.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("ui_assets.rs");
    std::fs::write(out, code).expect("writing the asset list");
}
