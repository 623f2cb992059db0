//! What the pool spends on one submitted genome: the AMM front end's compile, the optimizer,
//! the canonical hash and the gradient fingerprint (`genome::check_limited`), for a seed-sized
//! program, one at the instruction cap, and one at the jump cap.
//!
//! `cargo bench --bench pool_genome_check`

use criterion::{Criterion, criterion_group, criterion_main};
use ncpc::formats::Mode;
use ncpc::pool::server::genome::{MAX_INSTRUCTIONS, MAX_JUMPS, check_limited};

fn programs() -> Vec<(&'static str, String)> {
    let mse = "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[9,3,5],[21,5,0.3,5],[1,4,5,4],[201,4,-1,9],[453,9]]";
    // The longest straight-line program the pool takes: arithmetic chains over the inputs.
    let mut long = vec!["[100,1,0]".to_string(), "[100,2,1]".to_string()];
    for i in 0..(MAX_INSTRUCTIONS - 4) {
        let op = [1, 2, 3, 9, 10, 8][i % 6];
        long.push(format!(
            "[{op},{},{},{}]",
            1 + i % 3,
            2 + i % 2,
            1 + (i + 1) % 3
        ));
    }
    long.push("[201,1,-1,9]".into());
    long.push("[453,9]".into());
    // The most jumps the pool takes, in a program otherwise like MSE.
    let mut jumpy = vec![
        "[100,1,0]".to_string(),
        "[100,2,1]".to_string(),
        "[2,1,2,3]".to_string(),
    ];
    for i in 0..MAX_JUMPS {
        jumpy.push(format!("[451,3,{}]", 1 + i % 3));
        jumpy.push("[10,3,3]".into());
    }
    jumpy.push("[201,3,-1,9]".into());
    jumpy.push("[453,9]".into());
    vec![
        ("mse+mae (9 instructions)", mse.to_string()),
        ("256 instructions", format!("[{}]", long.join(","))),
        ("the most jumps", format!("[{}]", jumpy.join(","))),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool genome check");
    for (name, program) in programs() {
        let ok = check_limited(&program, Mode::Compat, MAX_INSTRUCTIONS);
        eprintln!(
            "{name}: {}",
            if ok.is_ok() { "accepted" } else { "refused" }
        );
        g.bench_function(name, |b| {
            b.iter(|| check_limited(&program, Mode::Compat, MAX_INSTRUCTIONS))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
