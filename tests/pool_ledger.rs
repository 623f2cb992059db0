//! A property of the pool's economics, on the store itself: for any sequence of evolve and
//! evaluate cycles by a set of keys (honest, lying, failing scores, copies of known
//! functions), the ledger only ever grows when a consensus forms, every entry pays for a
//! function with a consensus, evaluators are paid only for agreeing evaluations, and no key
//! earns an evaluator's reward for its own function or an evolver's reward for another's.

use ncpc::pool::protocol::TaskType;
use ncpc::pool::server::DbLocation;
use ncpc::pool::server::genome::check;
use ncpc::pool::server::store::{NewEvaluation, Store};
use proptest::prelude::*;
use std::collections::HashSet;

/// Programs an evolver may submit: new functions, and copies of the seeds and of each other
/// (renamed registers, scaled, shifted).
const PROGRAMS: &[&str] = &[
    "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,9],[453,9]]",
    "[[100,5,0],[100,6,1],[2,5,6,7],[10,7,8],[201,8,-1,9],[453,9]]",
    "[[100,1,0],[100,2,1],[2,1,2,3],[10,3,4],[201,4,-1,9],[21,9,1.000001,9],[453,9]]",
    "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[201,4,-1,9],[20,9,2.0,9],[453,9]]",
    "[[100,1,0],[100,2,1],[2,1,2,3],[9,3,4],[10,4,4],[201,4,-1,9],[453,9]]",
    "[[100,1,0],[100,2,1],[2,1,2,3],[8,3,4],[201,4,-1,9],[453,9]]",
];

/// Scores an evaluator may send: honest ones near each other, a liar's, AMM's failures.
const SCORES: &[f64] = &[0.80, 0.81, 0.79, 0.0, -99999.0, 0.3, 1.0];

#[derive(Clone, Debug)]
enum Op {
    Evolve { key: usize, program: usize },
    Evaluate { key: usize, score: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..PROGRAMS.len()).prop_map(|(key, program)| Op::Evolve { key, program }),
        (0..4usize, 0..SCORES.len()).prop_map(|(key, score)| Op::Evaluate { key, score }),
    ]
}

const KEYS: [&str; 4] = ["alice", "bob", "carol", "mallory"];

/// Run one op; the functions whose consensus formed in it.
fn run(st: &mut Store, op: &Op, now: i64) -> HashSet<i64> {
    let key = match op {
        Op::Evolve { key, .. } | Op::Evaluate { key, .. } => KEYS[*key],
    };
    st.reset_active(key).unwrap();
    let kind = match op {
        Op::Evolve { .. } => TaskType::Evolve,
        Op::Evaluate { .. } => TaskType::Evaluate,
    };
    let Ok(task) = st.issue_task(key, kind, "loss", 4, 60_000, now) else {
        return HashSet::new();
    };
    match op {
        Op::Evolve { program, .. } => {
            let g = check(PROGRAMS[*program]).unwrap();
            st.submit_evolution(key, &task.batch_id, &g, 0.5, "{}", now)
                .unwrap();
            HashSet::new()
        }
        Op::Evaluate { score, .. } => {
            let evals: Vec<NewEvaluation> = task
                .functions
                .iter()
                .map(|f| NewEvaluation {
                    function_id: f.id,
                    score: SCORES[*score],
                    criteria: "{}".into(),
                })
                .collect();
            st.submit_evaluations(key, &task.batch_id, &evals, now)
                .unwrap()
                .into_iter()
                .map(|c| c.function_id)
                .collect()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_ledger_pays_only_confirmed_work_and_never_a_key_for_its_own(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let mut st = Store::open(&DbLocation::Memory).unwrap();
        st.seed(ncpc::component::ComponentKind::Loss, 0).unwrap();
        for k in KEYS {
            st.register(k, 0).unwrap();
        }
        let mut paid_rows = 0;
        for (i, op) in ops.iter().enumerate() {
            let formed = run(&mut st, op, 1_000 + i as i64);
            let ledger = st.ledger_entries().unwrap();
            let new = &ledger[paid_rows..];
            // The ledger grows only when a consensus forms, and only for those functions.
            for e in new {
                let f = e.function_id.expect("every entry names its function");
                prop_assert!(formed.contains(&f), "{e:?} paid without a consensus event ({op:?})");
            }
            paid_rows = ledger.len();
            let functions = st.function_summaries().unwrap();
            for e in &ledger {
                prop_assert!(e.amount > 0.0 && e.amount.is_finite(), "{e:?}");
                let f = functions.iter().find(|f| Some(f.id) == e.function_id).unwrap();
                prop_assert!(f.consensus.is_some(), "{e:?}: no consensus");
                let valid = f.consensus.is_some_and(|c| c > 0.0 && c <= 1.0);
                prop_assert!(valid, "{e:?}: paid on a failed function's consensus");
                if e.reason.starts_with("evaluation") {
                    prop_assert!(f.evolver.as_deref() != Some(e.miner.as_str()),
                        "{} paid for evaluating its own function", e.miner);
                    let agreeing = st.agreeing_evaluators(f.id).unwrap();
                    prop_assert!(agreeing.contains(&e.miner), "{e:?}: did not agree");
                } else {
                    prop_assert_eq!(f.evolver.as_deref(), Some(e.miner.as_str()),
                        "an evolver's reward to someone else");
                }
            }
        }
        let total: f64 = st.ledger_entries().unwrap().iter().map(|e| e.amount).sum();
        let balances: f64 = KEYS.iter().map(|k| st.balance(k).unwrap()).sum();
        prop_assert!((total - balances).abs() < 1e-9);
    }
}

#[test]
fn the_property_s_cycles_do_form_consensus_and_pay() {
    let mut st = Store::open(&DbLocation::Memory).unwrap();
    st.seed(ncpc::component::ComponentKind::Loss, 0).unwrap();
    for k in KEYS {
        st.register(k, 0).unwrap();
    }
    let ops = [
        Op::Evolve { key: 0, program: 0 },
        Op::Evaluate { key: 1, score: 0 },
        Op::Evaluate { key: 2, score: 1 },
        Op::Evaluate { key: 3, score: 3 },
    ];
    let mut formed = HashSet::new();
    for (i, op) in ops.iter().enumerate() {
        formed.extend(run(&mut st, op, 1_000 + i as i64));
    }
    assert_eq!(formed.len(), 3, "both seeds and alice's function");
    let ledger = st.ledger_entries().unwrap();
    let paid = |who: &str| -> f64 {
        ledger
            .iter()
            .filter(|e| e.miner == who)
            .map(|e| e.amount)
            .sum()
    };
    assert_eq!(paid("bob"), 3.0);
    assert_eq!(paid("carol"), 3.0);
    assert_eq!(paid("mallory"), 0.0, "the liar");
    // Confirmed (top 10) and at the median; it ties the seeds, so it is not a new best.
    assert_eq!(paid("alice"), 6.0);
}
