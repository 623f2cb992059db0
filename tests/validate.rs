//! The validator (`ncpc validate`): DAML's top-k weights, duplicate resolution, bad files,
//! determinism across thread counts, and resuming a stopped round.

use ncpc::validate::signature::{SignatureMode, Verdict, resolve, signature};
use ncpc::validate::submissions::{Order, Submission};
use ncpc::validate::weights::{constrained_decay, topk_weights};
use rand::SeedableRng;
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::{Command, Output};

// ---------------------------------------------------------------------------------------
// Top-k weights against DAML's formula, written out by hand.

/// `constrained_decay(n, ratio)[i]` in closed form: a linear ramp from `ratio * s` to `s`
/// with `s = 2 / (n (1 + ratio))` (the ramp then sums to 1 exactly).
fn ramp(n: usize, ratio: f64, i: usize) -> f64 {
    let s = 2.0 / (n as f64 * (1.0 + ratio));
    if n == 1 {
        return 1.0;
    }
    s * ratio - i as f64 * (s * ratio - s) / (n - 1) as f64
}

fn pairs(v: &[(&str, f64)]) -> Vec<(String, f64)> {
    v.iter().map(|(h, s)| (h.to_string(), *s)).collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|h| h.to_string()).collect()
}

fn weight_of(w: &[(String, f64)], h: &str) -> f64 {
    w.iter().find(|(k, _)| k == h).map(|(_, x)| *x).unwrap()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-12, "{what}: {got} vs {want}");
}

#[test]
fn constrained_decay_is_a_normalized_linear_ramp() {
    for (n, ratio) in [(50, 5.0), (3, 5.0), (7, 2.0), (1, 5.0), (200, 10.0)] {
        let d = constrained_decay(n, ratio);
        assert_eq!(d.len(), n);
        for (i, w) in d.iter().enumerate() {
            assert_close(*w, ramp(n, ratio, i), &format!("decay({n}, {ratio})[{i}]"));
        }
        assert_close(d.iter().sum(), 1.0, "sum");
        if n > 1 {
            assert_close(d[0] / d[n - 1], ratio, "first / last");
        }
    }
}

#[test]
fn topk_more_than_k_weights_the_best_k_only() {
    // Five scored hotkeys, k = 3: the best three take 5/9, 3/9, 1/9.
    let scores = pairs(&[("a", 0.2), ("b", 0.9), ("c", 0.5), ("d", 0.7), ("e", 0.1)]);
    let all = names(&["a", "b", "c", "d", "e"]);
    let w = topk_weights(&scores, &all, 3, 5.0);
    assert_eq!(
        w.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e"]
    );
    for (h, want) in [
        ("b", 5.0 / 9.0),
        ("d", 3.0 / 9.0),
        ("c", 1.0 / 9.0),
        ("a", 0.0),
        ("e", 0.0),
    ] {
        assert_close(weight_of(&w, h), want, h);
    }
}

#[test]
fn topk_fewer_than_k_renormalizes_the_first_weights() {
    // Two scored hotkeys, k = 3: 5/9 and 3/9, renormalized to 5/8 and 3/8.
    let w = topk_weights(
        &pairs(&[("x", 0.3), ("y", 0.6)]),
        &names(&["x", "y"]),
        3,
        5.0,
    );
    assert_close(weight_of(&w, "y"), 5.0 / 8.0, "y");
    assert_close(weight_of(&w, "x"), 3.0 / 8.0, "x");
    // DAML's defaults with 4 hotkeys: the first four of the 50-ramp, renormalized.
    let scores = pairs(&[("a", 0.4), ("b", 0.3), ("c", 0.2), ("d", 0.1)]);
    let w = topk_weights(&scores, &names(&["a", "b", "c", "d"]), 50, 5.0);
    let first: f64 = (0..4).map(|i| ramp(50, 5.0, i)).sum();
    for (i, h) in ["a", "b", "c", "d"].iter().enumerate() {
        assert_close(weight_of(&w, h), ramp(50, 5.0, i) / first, h);
    }
}

#[test]
fn topk_zeros_are_dropped_and_every_known_hotkey_appears() {
    let scores = pairs(&[("a", 0.0), ("b", 0.5), ("c", -0.0), ("d", 0.25)]);
    // `z` never scored; `d` is scored but not among all_hotkeys (DAML's dict gains it).
    let all = names(&["z", "a", "b", "c"]);
    let w = topk_weights(&scores, &all, 3, 5.0);
    assert_eq!(
        w.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
        ["z", "a", "b", "c", "d"]
    );
    assert_close(weight_of(&w, "b"), 5.0 / 8.0, "b");
    assert_close(weight_of(&w, "d"), 3.0 / 8.0, "d");
    for h in ["z", "a", "c"] {
        assert_eq!(weight_of(&w, h), 0.0, "{h}");
    }
    // Nothing scored: every weight 0, nothing normalized.
    let w = topk_weights(&pairs(&[("a", 0.0)]), &names(&["a", "b"]), 50, 5.0);
    assert!(w.iter().all(|(_, x)| *x == 0.0), "{w:?}");
}

#[test]
fn topk_ties_keep_the_given_order_as_pythons_stable_sort() {
    // Equal scores rank in the order the scores are given.
    let scores = pairs(&[("p", 0.5), ("q", 0.7), ("r", 0.5), ("s", 0.5)]);
    let w = topk_weights(&scores, &names(&["p", "q", "r", "s"]), 3, 5.0);
    assert_close(weight_of(&w, "q"), 5.0 / 9.0, "q");
    assert_close(weight_of(&w, "p"), 3.0 / 9.0, "p");
    assert_close(weight_of(&w, "r"), 1.0 / 9.0, "r");
    assert_eq!(weight_of(&w, "s"), 0.0);
    let swapped = pairs(&[("r", 0.5), ("q", 0.7), ("p", 0.5), ("s", 0.5)]);
    let w = topk_weights(&swapped, &names(&["p", "q", "r", "s"]), 3, 5.0);
    assert_close(weight_of(&w, "r"), 3.0 / 9.0, "r first now");
    assert_close(weight_of(&w, "p"), 1.0 / 9.0, "p second now");
}

// ---------------------------------------------------------------------------------------
// Duplicate resolution.

const MSE: &str = "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[453,9]]";
/// MSE with other registers (5, 6, 7 for 1, 2, 3).
const MSE_RENAMED: &str = "[[100,5,0],[100,6,1],[2,5,6,7],[10,7,4],[201,4,-1,9],[453,9]]";
/// MSE * 2.5 + 3.
const MSE_SCALED: &str =
    "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[21,9,2.5,9],[20,9,3.0,9],[453,9]]";
const MAE: &str = "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,9],[453,9]]";

fn sub(id: &str, hotkey: &str, block: u64, genome: &str) -> Submission {
    Submission {
        id: id.into(),
        hotkey: hotkey.into(),
        order: Order::Block(block),
        genome: genome.into(),
        format: None,
    }
}

/// Verdicts of submissions given in any order (sorted earliest first, as a round does).
fn verdicts(mut subs: Vec<Submission>, mode: SignatureMode) -> Vec<(String, Verdict)> {
    subs.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let sigs: Vec<_> = subs.iter().map(|s| signature(s, mode)).collect();
    resolve(&sigs)
        .into_iter()
        .zip(&subs)
        .map(|(v, s)| {
            let v = match v {
                // Name the original by id, not by index.
                Verdict::Duplicate(o) => Verdict::NoSignature(format!("dup of {}", subs[o].id)),
                other => other,
            };
            (s.id.clone(), v)
        })
        .collect()
}

fn dup_of(id: &str) -> Verdict {
    Verdict::NoSignature(format!("dup of {id}"))
}

#[test]
fn the_earliest_submission_is_the_original_and_later_copies_are_duplicates() {
    let subs = vec![
        // Given out of order: the renamed copy at block 12, the original at block 10.
        sub("renamed", "B", 12, MSE_RENAMED),
        sub("mse", "A", 10, MSE),
        sub("scaled", "C", 13, MSE_SCALED),
        sub("mae", "D", 11, MAE),
        sub("bad", "E", 9, "[[453,"),
    ];
    let v = verdicts(subs.clone(), SignatureMode::Gradient);
    assert_eq!(v[0].0, "bad");
    assert!(
        matches!(&v[0].1, Verdict::NoSignature(m) if m.contains("does not compile")),
        "{v:?}"
    );
    assert_eq!(v[1], ("mse".into(), Verdict::Original));
    assert_eq!(v[2], ("mae".into(), Verdict::Original));
    assert_eq!(v[3], ("renamed".into(), dup_of("mse")));
    assert_eq!(v[4], ("scaled".into(), dup_of("mse")));
    // DAML's output signature does not catch the scaled copy; `outputs` mode neither.
    let v = verdicts(subs, SignatureMode::Outputs);
    assert_eq!(v[3], ("renamed".into(), dup_of("mse")));
    assert_eq!(v[4], ("scaled".into(), Verdict::Original));
}

#[test]
fn a_copy_submitted_earlier_wins_and_block_ties_go_to_the_smaller_hotkey() {
    // The "copier" was first on chain: it holds the original.
    let v = verdicts(
        vec![sub("x", "A", 10, MSE), sub("y", "B", 5, MSE_RENAMED)],
        SignatureMode::Gradient,
    );
    assert_eq!(
        v,
        [("y".into(), Verdict::Original), ("x".into(), dup_of("y"))]
    );
    // Same block: hotkey order decides, whatever the file names.
    let v = verdicts(
        vec![sub("a", "Z", 7, MSE), sub("b", "M", 7, MSE)],
        SignatureMode::Gradient,
    );
    assert_eq!(
        v,
        [("b".into(), Verdict::Original), ("a".into(), dup_of("b"))]
    );
}

// ---------------------------------------------------------------------------------------
// The command end to end.

fn ncpc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ncpc"))
        .args(args)
        .output()
        .expect("spawn ncpc")
}

fn write(dir: &Path, name: &str, v: &Json) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, v.to_string()).unwrap();
}

/// A generated round: random AMM and DAML originals (that train), every `copy_every`-th
/// copied by another hotkey at a later block (AMM programs scaled by 2.5, DAML trees as
/// they are), and with `hand_made` a hotkey with two submissions and a renamed MSE copy.
fn generated_round(dir: &Path, originals: usize, copy_every: usize, hand_made: bool) {
    use ncpc::evolve::genome::{Genome, GenomeFormat};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    // Random genomes that train (a signature, so no fault, NaN or missing gradient on the
    // probes), each a different function from those before it.
    let mut seen = std::collections::HashSet::new();
    let mut pick = |format: GenomeFormat, n: usize| {
        let mut out = Vec::new();
        while out.len() < n {
            let g = Genome::random_population(format, 1, &mut rng).remove(0);
            let text = g.to_text();
            let Ok(sig) = signature(&sub("probe", "p", 0, &text), SignatureMode::Gradient) else {
                continue;
            };
            if sig.lookups.iter().any(|k| seen.contains(k)) {
                continue;
            }
            seen.extend(sig.keys);
            out.push(g);
        }
        out
    };
    let mut amm = pick(GenomeFormat::Amm, originals / 2);
    amm.extend(pick(GenomeFormat::Daml, originals - originals / 2));
    let mut block = 100;
    for (k, g) in amm.iter().enumerate() {
        block += 1;
        let text = g.to_text();
        let v = match g.format() {
            GenomeFormat::Daml => {
                let e: Json = serde_json::from_str(&text).unwrap();
                json!({"hotkey": format!("m{k:03}"), "block": block, "expression": e["expression"]})
            }
            _ => json!({"hotkey": format!("m{k:03}"), "block": block, "genome": text}),
        };
        write(dir, &format!("orig/{k:03}.json"), &v);
        // Every third is copied later by another hotkey: AMM ones scaled, DAML ones as is.
        if k % copy_every == 0 {
            let mut copy = v.clone();
            copy["hotkey"] = json!(format!("c{k:03}"));
            copy["block"] = json!(block + 1000);
            if let Genome::Amm(code) = g {
                let mut c = code.clone();
                let ret = c.len() - 1;
                c.insert(ret, vec![json!(21), json!(9), json!(2.5), json!(9)]);
                copy["genome"] = json!(ncpc::evolve::amm_ops::to_text(&c));
            }
            write(dir, &format!("copies/{k:03}.json"), &copy);
        }
    }
    if !hand_made {
        return;
    }
    write(
        dir,
        "mse.json",
        &json!({"hotkey": "A", "block": 10, "genome": serde_json::from_str::<Json>(MSE).unwrap()}),
    );
    write(
        dir,
        "mse_again.json",
        &json!({"hotkey": "A", "block": 20, "genome": MAE}),
    );
    write(
        dir,
        "renamed.json",
        &json!({"hotkey": "B", "block": 12, "genome": MSE_RENAMED}),
    );
}

fn validate(subs: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "validate",
        "--submissions",
        subs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--protocol",
        "daml-mlp",
        "--steps",
        "20",
    ];
    args.extend_from_slice(extra);
    ncpc(&args)
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "ncpc validate failed ({:?}): {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_weights(out: &Path) -> (String, Json) {
    let text = std::fs::read_to_string(out.join("weights.json")).unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

#[test]
fn a_round_is_byte_identical_across_thread_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let subs = tmp.path().join("subs");
    generated_round(&subs, 12, 3, true);
    let (one, two) = (tmp.path().join("t1"), tmp.path().join("t2"));
    ok(validate(&subs, &one, &["--threads", "1"]));
    let report = ok(validate(&subs, &two, &["--threads", "2"]));
    let (a, v) = read_weights(&one);
    let (b, _) = read_weights(&two);
    assert_eq!(a, b, "weights.json differs between 1 and 2 threads");
    // The round did what it says: copies are duplicates, weights sum to 1.
    let total: f64 = v["weights"]
        .as_object()
        .unwrap()
        .values()
        .map(|w| w.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-12, "{total}");
    let hk = &v["hotkeys"];
    assert_eq!(hk["B"]["duplicate_of"], "A", "{hk}");
    assert_eq!(hk["B"]["weight"], 0.0);
    // A's best original is chosen among its two submissions.
    assert_eq!(hk["A"]["submissions"], 2);
    let subs_list = v["submissions"].as_array().unwrap();
    let score_of = |id: &str| {
        subs_list.iter().find(|s| s["id"] == id).unwrap()["score"]
            .as_f64()
            .unwrap()
    };
    let best = score_of("mse.json").max(score_of("mse_again.json"));
    assert_eq!(hk["A"]["score"].as_f64().unwrap(), best);
    for copy in subs_list
        .iter()
        .filter(|s| s["hotkey"].as_str().unwrap().starts_with('c'))
    {
        assert_ne!(copy["status"], "original", "{copy}");
    }
    // Every copy of an original is its duplicate, scaled AMM copies included.
    let status = |id: &str| subs_list.iter().find(|s| s["id"] == id).cloned();
    let (mut caught, mut scaled) = (0, 0);
    for copy in subs_list
        .iter()
        .filter(|s| s["id"].as_str().unwrap().starts_with("copies/"))
    {
        let orig_id = copy["id"].as_str().unwrap().replace("copies/", "orig/");
        let orig = status(&orig_id).unwrap();
        if orig["status"] == "original" {
            assert_eq!(copy["status"], "duplicate", "{copy}");
            assert_eq!(copy["duplicate_of"], orig_id.as_str(), "{copy}");
            caught += 1;
            // The first half of the originals are AMM programs, copied scaled by 2.5.
            let k: usize = orig_id[5..8].parse().unwrap();
            scaled += usize::from(k < 6);
        }
    }
    assert!(
        caught >= 2 && scaled >= 1,
        "{caught} copies caught, {scaled} scaled"
    );
    assert!(report.contains("duplicate of A"), "{report}");
}

#[test]
fn malformed_files_are_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let subs = tmp.path().join("subs");
    write(
        &subs,
        "good.json",
        &json!({"hotkey": "A", "block": 1, "genome": MSE}),
    );
    std::fs::write(subs.join("broken.json"), "{\"hotkey\": ").unwrap();
    write(&subs, "nokey.json", &json!({"block": 2, "genome": MAE}));
    write(
        &subs,
        "neg.json",
        &json!({"hotkey": "B", "block": -3, "genome": MAE}),
    );
    write(
        &subs,
        "late.json",
        &json!({"hotkey": "C", "timestamp": 5, "genome": MAE}),
    );
    std::fs::write(subs.join("big.json"), " ".repeat(30_000)).unwrap();
    // A genome that does not compile is not malformed: it is a submission without a
    // signature (DAML: a duplicate), scored 0.
    write(
        &subs,
        "nonsense.json",
        &json!({"hotkey": "D", "block": 3, "expression": "safe_add(x, nope)"}),
    );
    let out = tmp.path().join("out");
    let o = validate(&subs, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(o);
    for (file, why) in [
        ("broken.json", "not JSON"),
        ("nokey.json", "`hotkey`"),
        ("neg.json", "`block`"),
        ("late.json", "by block"),
        ("big.json", "bytes"),
    ] {
        assert!(
            stderr.contains(&format!("skipped {file}: ")) && stderr.contains(why),
            "{file}: {stderr}"
        );
    }
    let (_, v) = read_weights(&out);
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "big.json",
            "broken.json",
            "late.json",
            "neg.json",
            "nokey.json"
        ]
    );
    assert_eq!(v["weights"]["A"], 1.0);
    assert_eq!(v["weights"]["D"], 0.0);
    assert!(
        v["hotkeys"]["D"]["failure"]
            .as_str()
            .unwrap()
            .contains("no signature"),
        "{}",
        v["hotkeys"]["D"]
    );
}

#[test]
fn a_stopped_round_continues_without_training_finished_submissions_again() {
    let tmp = tempfile::tempdir().unwrap();
    let subs = tmp.path().join("subs");
    generated_round(&subs, 6, 3, true);
    let fresh = tmp.path().join("fresh");
    ok(validate(&subs, &fresh, &[]));
    let (fresh_text, fresh_v) = read_weights(&fresh);
    let originals = fresh_v["round"]["originals"].as_u64().unwrap();
    assert!(originals >= 3, "{originals}");

    // Stop after two originals: no weights yet, two scores in the state.
    let resumed = tmp.path().join("resumed");
    let report = ok(validate(&subs, &resumed, &["--stop-after", "2"]));
    assert!(report.contains("round stopped"), "{report}");
    assert!(!resumed.join("weights.json").exists());
    let state = resumed.join("round-state.jsonl");
    let lines = std::fs::read_to_string(&state).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    // Continue: the rest is trained, and the weights are those of the uninterrupted round.
    let report = ok(validate(&subs, &resumed, &[]));
    assert!(
        report.contains(&format!(
            "({} trained, 2 from the round state)",
            originals - 2
        )),
        "{report}"
    );
    assert_eq!(read_weights(&resumed).0, fresh_text);

    // The stored scores are used as they are: change one, and the next round reports it
    // without training anything.
    let text = std::fs::read_to_string(&state).unwrap();
    let mut lines: Vec<Json> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["score"] = json!(0.123456789);
    lines[0]["failure"] = Json::Null;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&state, text).unwrap();
    let report = ok(validate(&subs, &resumed, &[]));
    assert!(
        report.contains(&format!("(0 trained, {originals} from the round state)")),
        "{report}"
    );
    let (_, v) = read_weights(&resumed);
    let scores: Vec<f64> = v["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["score"].as_f64().unwrap())
        .collect();
    assert!(scores.contains(&0.123456789), "{scores:?}");
}

#[test]
fn dry_run_sets_nothing_and_bad_flags_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let subs = tmp.path().join("subs");
    write(
        &subs,
        "a.json",
        &json!({"hotkey": "A", "block": 1, "genome": MSE}),
    );
    let out = tmp.path().join("out");
    let report = ok(validate(&subs, &out, &["--dry-run"]));
    assert!(report.contains("dry run"), "{report}");
    assert!(!out.join("weights.json").exists());
    for bad in [
        &["--top-k", "0"][..],
        &["--ratio", "-1"],
        &["--threads", "0"],
    ] {
        let o = validate(&subs, &out, bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
    }
    let o = ncpc(&[
        "validate",
        "--submissions",
        tmp.path().join("missing").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--protocol",
        "daml-mlp",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing"));
}

/// The benchmark round of docs/validator.md: 128 originals and a copy of each, 256
/// submissions, written to `$NCPC_VALIDATE_BENCH` (run with `--ignored`).
#[test]
#[ignore]
fn generate_round_of_256() {
    let Ok(dir) = std::env::var("NCPC_VALIDATE_BENCH") else {
        panic!("set NCPC_VALIDATE_BENCH to the directory to write");
    };
    let dir = Path::new(&dir);
    generated_round(dir, 128, 1, false);
    let n = walk(dir);
    assert_eq!(n, 256);
    println!("wrote {n} submissions to {}", dir.display());
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p) } else { 1 }
        })
        .sum()
}

// ---------------------------------------------------------------------------------------
// A pool as the source: the listing read a page at a time, seeds left out.

#[test]
fn a_pools_listing_is_read_page_by_page_without_seeds() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
            }
            let body = if request.contains("after=0") {
                json!({"functions": [
                    {"function_id": 1, "component_type": "loss", "function": [[453, 1]],
                     "evolver": null, "created_at": 1.0},
                    {"function_id": 4, "component_type": "loss",
                     "function": serde_json::from_str::<Json>(MSE).unwrap(),
                     "evolver": "5Miner", "created_at": 2.0}],
                    "next_after": 4})
            } else {
                json!({"functions": [
                    {"function_id": 7, "component_type": "loss",
                     "function": serde_json::from_str::<Json>(MAE).unwrap(),
                     "evolver": "5Other", "created_at": 3.0}],
                    "next_after": null})
            }
            .to_string();
            seen.push(request);
            let mut s = stream;
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        seen
    });
    let set = ncpc::validate::pool_source::read_pool(&format!("http://{addr}/")).unwrap();
    let requests = server.join().unwrap();
    assert!(requests[0].starts_with("GET /api/v1/functions?after=0&limit=500 "));
    assert!(requests[1].starts_with("GET /api/v1/functions?after=4&limit=500 "));
    let got: Vec<(&str, &str, Order)> = set
        .submissions
        .iter()
        .map(|s| (s.id.as_str(), s.hotkey.as_str(), s.order))
        .collect();
    assert_eq!(
        got,
        [
            ("pool:4", "5Miner", Order::PoolId(4)),
            ("pool:7", "5Other", Order::PoolId(7))
        ]
    );
    assert!(set.skipped.is_empty());
}

/// The same listing from a real pool (`spawn_local`): two miners' functions, the seeds left
/// out, and a round over them with weights for both hotkeys.
#[test]
fn a_round_over_a_real_pool_s_functions() {
    use ncpc::identity::Identity;
    use ncpc::pool::client::PoolClient;
    use ncpc::pool::protocol::{EvolutionMetadata, LenientF64, ParentRef, TaskType};
    use ncpc::pool::server::{DbLocation, ServerConfig, spawn_local};
    let pool = spawn_local(ServerConfig {
        ip_rate_burst: 10_000,
        ip_rate_per_second: 10_000.0,
        ..ServerConfig::local(DbLocation::Memory)
    })
    .unwrap();
    let mut hotkeys = Vec::new();
    for (name, program) in [
        ("Alice", MAE),
        (
            "Bob",
            "[[100,1,0],[100,2,1],[2,1,2,3],[8,3,4],[201,4,-1,9],[453,9]]",
        ),
    ] {
        let id = Identity::from_secret(&format!("//{name}"), "test").unwrap();
        hotkeys.push(id.ss58());
        let c = PoolClient::new(pool.url(), id).unwrap();
        c.register().unwrap();
        let task = c.request_task(TaskType::Evolve).unwrap();
        let parent = task.functions[0].id.clone();
        let meta = EvolutionMetadata {
            fitness: LenientF64(0.5),
            generations: 1,
            population_size: 1,
            parent_id: parent.clone(),
            genetic_code_length: 6,
            total_evaluations: 1,
            generation_stats: Json::Null,
            extra: Default::default(),
        };
        let answer = c
            .submit_evolution(
                task.batch_id.as_str().unwrap(),
                program.into(),
                vec![ParentRef { id: parent }],
                meta,
            )
            .unwrap();
        assert_eq!(answer["duplicate"], false, "{answer}");
    }
    let set = ncpc::validate::pool_source::read_pool(pool.url()).unwrap();
    let got: Vec<&str> = set.submissions.iter().map(|s| s.hotkey.as_str()).collect();
    assert_eq!(
        got,
        [hotkeys[0].as_str(), hotkeys[1].as_str()],
        "seeds are left out"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("round");
    ok(ncpc(&[
        "validate",
        "--pool",
        pool.url(),
        "--out",
        out.to_str().unwrap(),
        "--protocol",
        "daml-mlp",
        "--steps",
        "20",
    ]));
    let (_, v) = read_weights(&out);
    for h in &hotkeys {
        assert!(
            v["weights"][h].is_number(),
            "{h} has a weight: {}",
            v["weights"]
        );
    }
}
