//! The pool wire protocol: JSON shapes as the AMM client and pool write them, non-finite
//! numbers, and request authentication.

use ncpc::identity::Identity;
use ncpc::pool::protocol::*;
use serde_json::json;

const BAIKAL: &str = include_str!("corpus/amm/baikal.json");

fn alice() -> Identity {
    Identity::from_secret("//Alice", "test").unwrap()
}

#[test]
fn task_request_puts_auth_at_the_top_level() {
    let req = TaskRequest {
        auth: Auth::sign(&alice(), 1_700_000_000),
        task_type: TaskType::Evaluate,
    };
    let v = serde_json::to_value(&req).unwrap();
    assert_eq!(v["task_type"], "evaluate");
    assert_eq!(v["message"], "auth:1700000000");
    assert_eq!(v["public_address"], alice().ss58());
    assert_eq!(v["signature"].as_str().unwrap().len(), 128);
    let back: TaskRequest = serde_json::from_value(v).unwrap();
    assert_eq!(back, req);
}

#[test]
fn auth_verifies_and_rejects_skew_tampering_and_bad_messages() {
    let auth = Auth::sign(&alice(), 1000);
    assert_eq!(auth.verify(1000, 60), Ok(()));
    assert_eq!(auth.verify(1059, 60), Ok(()));
    assert_eq!(auth.verify(1100, 60), Err(AuthError::Skew(-100)));
    assert_eq!(auth.verify(900, 60), Err(AuthError::Skew(100)));

    let mut other_address = auth.clone();
    other_address.public_address = Identity::from_secret("//Bob", "t").unwrap().ss58();
    assert_eq!(other_address.verify(1000, 60), Err(AuthError::BadSignature));

    let mut other_time = auth.clone();
    other_time.message = "auth:1001".into();
    assert_eq!(other_time.verify(1000, 60), Err(AuthError::BadSignature));

    let mut garbage = auth.clone();
    garbage.signature = "zz".into();
    assert_eq!(garbage.verify(1000, 60), Err(AuthError::BadSignature));

    let mut bad_address = auth.clone();
    bad_address.public_address = "not-an-address".into();
    assert_eq!(bad_address.verify(1000, 60), Err(AuthError::BadSignature));

    for message in ["hello", "auth:", "auth:12x", "1000"] {
        let mut m = auth.clone();
        m.message = message.into();
        assert_eq!(m.verify(1000, 60), Err(AuthError::BadMessage), "{message}");
    }
}

#[test]
fn task_batch_accepts_programs_as_lists_and_as_strings() {
    let list: serde_json::Value = serde_json::from_str(BAIKAL).unwrap();
    let body = json!({
        "batch_id": "6f1c7a2e-0000-4000-8000-000000000001",
        "functions": [
            {"id": 7, "function": list},
            {"id": "abc", "function": BAIKAL},
        ],
        "pool_note": "kept",
    });
    let batch: TaskBatch = serde_json::from_value(body).unwrap();
    assert_eq!(batch.component_type, "loss");
    assert_eq!(batch.extra["pool_note"], "kept");
    let a = batch.functions[0].program().unwrap();
    let b = batch.functions[1].program().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.instrs.len(), 10);
}

#[test]
fn a_malformed_function_is_an_error_not_a_panic() {
    let f = TaskFunction {
        id: json!(1),
        function: json!("[[100, 1"),
    };
    assert!(f.program().is_err());
    let f = TaskFunction {
        id: json!(1),
        function: json!({"not": "a program"}),
    };
    assert!(f.program().is_err());
}

#[test]
fn non_finite_fitness_travels_as_strings() {
    for (x, text) in [
        (f64::NAN, "\"NaN\""),
        (f64::INFINITY, "\"Infinity\""),
        (f64::NEG_INFINITY, "\"-Infinity\""),
        (0.25, "0.25"),
    ] {
        let s = serde_json::to_string(&LenientF64(x)).unwrap();
        assert_eq!(s, text);
        let back: LenientF64 = serde_json::from_str(&s).unwrap();
        assert!(back.0 == x || (x.is_nan() && back.0.is_nan()));
    }
    assert!(serde_json::from_str::<LenientF64>("\"lots\"").is_err());
    assert!(serde_json::from_str::<LenientF64>("[1]").is_err());
}

#[test]
fn evolution_submission_has_the_amm_shape() {
    let sub = EvolutionSubmission {
        auth: Auth::sign(&alice(), 5),
        evolved_function: BAIKAL.replace(['\n', ' '], ""),
        parent_functions: vec![ParentRef { id: json!(7) }],
        metadata: EvolutionMetadata {
            fitness: LenientF64(f64::NEG_INFINITY),
            generations: 3,
            population_size: 10,
            parent_id: json!(7),
            genetic_code_length: 10,
            total_evaluations: 30,
            generation_stats: json!([]),
            extra: Default::default(),
        },
    };
    let v = serde_json::to_value(&sub).unwrap();
    assert_eq!(v["metadata"]["fitness"], "-Infinity");
    assert_eq!(v["parent_functions"], json!([{"id": 7}]));
    assert_eq!(v["message"], "auth:5");
    let back: EvolutionSubmission = serde_json::from_value(v).unwrap();
    assert_eq!(back.metadata.fitness.0, f64::NEG_INFINITY);
    assert_eq!(back.evolved_function, sub.evolved_function);
}

#[test]
fn evaluation_submission_writes_minus_infinity_as_the_low_fitness_value() {
    let sub = EvaluationSubmission {
        auth: Auth::sign(&alice(), 5),
        batch_id: "b".into(),
        evaluations: vec![Evaluation {
            function_id: json!("f1"),
            score: wire_score(f64::NEG_INFINITY),
            criteria: Criteria {
                accuracy: 0.5,
                stability: 1.0,
                efficiency: 0.9,
            },
        }],
    };
    let text = serde_json::to_string(&sub).unwrap();
    assert!(text.contains("-99999"), "{text}");
    assert_eq!(wire_score(0.75), 0.75);
    assert_eq!(LOW_FITNESS_VALUE, -99999.0);
    assert_eq!(API_PREFIX, "/api/v1");
}

#[test]
fn skew_checks_never_overflow() {
    use ncpc::pool::protocol::{AuthError, check_skew};
    let now = 1_800_000_000;
    for t in [i64::MIN, i64::MAX, i64::MIN + now, i64::MAX - 1] {
        assert!(
            matches!(check_skew(t, now, 120), Err(AuthError::Skew(_))),
            "auth:{t}"
        );
    }
    assert!(check_skew(now - 120, now, 120).is_ok());
    assert!(check_skew(now + 121, now, 120).is_err());
    // A negative window admits nothing, and extreme clocks do not overflow either.
    assert!(check_skew(now, i64::MIN, 5).is_err());
    assert!(check_skew(now, now, i64::MIN).is_err() || check_skew(now, now, i64::MIN).is_ok());
}
