//! Snapshots of the IR of every corpus genome, before and after optimization (insta).
//! Re-bless with `INSTA_UPDATE=always cargo test --test snapshots` or `cargo insta review`.

use ncp_ir::passes::{OptOptions, canonical_hash, optimize};
use ncp_ir::text::print_function;
use ncpc::formats::{CompileOptions, compile};

fn render(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let opts = CompileOptions {
        name,
        ..Default::default()
    };
    match compile(&text, &opts) {
        Err(e) => format!("error: {e}\n"),
        Ok(c) => {
            let mut f = c.func.clone();
            let before = print_function(&f);
            let stats = optimize(
                &mut f,
                OptOptions {
                    verify_each: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let stats: Vec<String> = stats
                .iter()
                .map(|s| format!("{} {}", s.pass, s.changes))
                .collect();
            let mut out = format!(
                "; format {}, {} notes\n{before}\n; optimized: {}\n{}",
                c.format,
                c.notes.len(),
                stats.join(", "),
                print_function(&f)
            );
            out.push_str(&format!("; hash {}\n", canonical_hash(&f)));
            for n in &c.notes {
                out.push_str(&format!("; note: {n}\n"));
            }
            out
        }
    }
}

#[test]
fn amm_corpus() {
    insta::glob!("corpus/amm/*.json", |p| insta::assert_snapshot!(render(p)));
}

#[test]
fn haz_corpus() {
    insta::glob!("corpus/haz/*.json", |p| insta::assert_snapshot!(render(p)));
}

#[test]
fn daml_corpus() {
    insta::glob!("corpus/daml/*.json", |p| insta::assert_snapshot!(render(p)));
}
