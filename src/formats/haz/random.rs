//! Seeded random HAZ genes, for tests, fuzzing and evolution, and [`to_json`] to write a
//! [`Gene`] back out in the export format [`parse_gene`](super::parse_gene) reads.

use super::table::{Kind, op_info, uses_inputs};
use super::{AddrRef, ConstRef, Gene, Memory, OpRef};
use rand::Rng;
use serde_json::{Value as Json, json};

/// The ops that draw from torch's global RNG (ncpc cannot reproduce their values).
pub const RANDOM_OPS: [u8; 6] = [17, 18, 19, 49, 81, 101];

/// Deterministic ops that always poison or fault (0 stores `None`, 62 and 93 always raise):
/// drawn rarely, so that most genes run to the end.
const RARE_OPS: [u8; 3] = [0, 62, 93];

/// Deterministic ops with strict rank or size rules (dot, `.item()` fill, repeats, outer,
/// matmul) that fault on most operands: drawn less often than the element-wise ops.
const STRICT_OPS: [u8; 7] = [61, 95, 96, 97, 98, 99, 102];

/// Vector slot shapes to draw from: a broadcastable `[1]`, sizes that meet or miss the
/// input sizes, and the miner's default length.
const VECTOR_SHAPES: [&[u32]; 4] = [&[1], &[3], &[7], &[128]];

/// Tensor slot shapes to draw from (each within the validator's limit of 10,000 elements).
const TENSOR_SHAPES: [&[u32]; 4] = [&[1, 1], &[4, 3], &[3, 7], &[100, 100]];

/// The ops [`random_gene`] draws from most of the time: the element-wise ops, reductions,
/// softmax, transpose and the constant op.
fn common_ops() -> impl Iterator<Item = u8> {
    (0..=102u8)
        .filter(|id| !RANDOM_OPS.contains(id) && !RARE_OPS.contains(id) && !STRICT_OPS.contains(id))
}

/// A random deterministic op id, drawn as [`random_gene`] draws them.
pub fn random_op(rng: &mut impl Rng) -> u8 {
    static COMMON: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    draw_op(rng, COMMON.get_or_init(|| common_ops().collect()))
}

/// Draw an op id: one of [`common_ops`] mostly, of [`STRICT_OPS`] sometimes, of [`RARE_OPS`]
/// now and then.
fn draw_op(rng: &mut impl Rng, common: &[u8]) -> u8 {
    let r: f64 = rng.random();
    if r < 0.01 {
        RARE_OPS[rng.random_range(0..RARE_OPS.len())]
    } else if r < 0.04 {
        STRICT_OPS[rng.random_range(0..STRICT_OPS.len())]
    } else {
        common[rng.random_range(0..common.len())]
    }
}

/// A random gene of `len` instructions (the import accepts at most
/// [`MAX_GENE_LENGTH`](super::MAX_GENE_LENGTH)).
///
/// Only deterministic ops are drawn (never the random ops of [`RANDOM_OPS`]): mostly
/// element-wise ops and reductions, sometimes the ops with strict shape rules (dot, matmul,
/// outer, repeats, fill), rarely the ones that always poison or fault (0, 62, 93). The memory layout varies a little around the
/// reference corpus's: 2-5 scalar slots of shape `[1]` (sometimes 0-dim), 1-3 vector and 1-3
/// tensor slots of a few fixed shapes, some of which meet typical input sizes. Addresses mostly
/// read `y_pred` (slot 0) or a slot computed from it (first input) and `y_true` (slot 1) or
/// slots written earlier (second input), and mostly write slot 0 or a scratch scalar slot, so
/// that many genes give a loss that depends on `y_pred`; a few are negative (Python-style
/// wrap). Constants are drawn as the project draws them:
/// `U(-1, 1)` and `U(0, 1)`, the second sometimes negated as its mutation does.
pub fn random_gene(rng: &mut impl Rng, len: usize) -> Gene {
    let memory = random_memory(rng);
    random_gene_in(rng, len, memory)
}

/// A random memory layout, as [`random_gene`] draws one.
pub fn random_memory(rng: &mut impl Rng) -> Memory {
    Memory {
        num_scalars: rng.random_range(2..=5),
        num_vectors: rng.random_range(1..=3),
        num_tensors: rng.random_range(1..=3),
        scalar_shape: if rng.random_bool(0.9) {
            vec![1]
        } else {
            Vec::new()
        },
        vector_shape: VECTOR_SHAPES[rng.random_range(0..VECTOR_SHAPES.len())].to_vec(),
        tensor_shape: TENSOR_SHAPES[rng.random_range(0..TENSOR_SHAPES.len())].to_vec(),
    }
}

/// A random gene of `len` instructions over the given memory layout (at least two slots:
/// `y_pred` in slot 0, `y_true` in slot 1), drawn as [`random_gene`] draws its instructions.
pub fn random_gene_in(rng: &mut impl Rng, len: usize, memory: Memory) -> Gene {
    let n = memory.len();
    let common: Vec<u8> = common_ops().collect();
    let mut written: Vec<usize> = Vec::new();
    // Which slots hold a value computed from `y_pred` (as far as the op table tells).
    let mut live = vec![false; n];
    live[0] = true;
    let (mut ops, mut in1, mut in2, mut out) = (
        Vec::with_capacity(len),
        Vec::with_capacity(len),
        Vec::with_capacity(len),
        Vec::with_capacity(len),
    );
    let (mut k1, mut k2) = (Vec::with_capacity(len), Vec::with_capacity(len));
    for i in 0..len {
        let id = draw_op(rng, &common);
        ops.push(OpRef::Id(id));
        let a = read_slot(rng, n, &written, &live, 0.75);
        in1.push(address(rng, n, a));
        let b = read_slot(rng, n, &written, &live, 0.3);
        in2.push(address(rng, n, b));
        let last = i + 1 == len;
        let o = if rng.random_bool(if last { 0.75 } else { 0.4 }) {
            0
        } else if memory.num_scalars > 2 && rng.random_bool(0.7) {
            rng.random_range(2..memory.num_scalars)
        } else {
            rng.random_range(0..n)
        };
        written.push(o);
        live[o] = op_info(id).is_some_and(|info| {
            let (use1, use2) = uses_inputs(info.kind);
            info.kind != Kind::Fill && (use1 && live[a] || use2 && live[b])
        });
        out.push(address(rng, n, o));
        k1.push(ConstRef::F32(rng.random_range(-1.0f32..1.0)));
        let c = rng.random_range(0.0f32..1.0);
        k2.push(ConstRef::F32(if rng.random_bool(0.1) { -c } else { c }));
    }
    Gene {
        length: len as i64,
        meta_level: 0,
        ops,
        in1,
        in2,
        out,
        k1,
        k2,
        memory,
    }
}

/// A slot to read: with probability `p_live` one holding a value computed from `y_pred`,
/// otherwise mostly `y_true` or a slot written earlier, sometimes any slot (a zero slot of
/// its declared shape).
fn read_slot(rng: &mut impl Rng, n: usize, written: &[usize], live: &[bool], p_live: f64) -> usize {
    let live: Vec<usize> = (0..n).filter(|&i| live[i]).collect();
    if !live.is_empty() && rng.random_bool(p_live) {
        live[rng.random_range(0..live.len())]
    } else if rng.random_bool(0.35) {
        1
    } else if !written.is_empty() && rng.random_bool(0.85) {
        written[rng.random_range(0..written.len())]
    } else {
        rng.random_range(0..n)
    }
}

/// The address of slot `slot`: itself, or now and then its negative (wrapped) spelling.
fn address(rng: &mut impl Rng, n: usize, slot: usize) -> AddrRef {
    if rng.random_bool(0.03) {
        AddrRef::Index(slot as i64 - n as i64)
    } else {
        AddrRef::Index(slot as i64)
    }
}

/// A gene as the export's JSON object (compact), which [`parse_gene`](super::parse_gene)
/// reads back to an equal [`Gene`] (NaN constants aside, which never compare equal).
///
/// Non-finite constants are written as Python's `json.dump` writes them (`NaN`, `Infinity`,
/// `-Infinity`). Entries that do not hold a valid value are written so that they read back
/// as the same variant, with the original JSON where the stored description still holds it:
/// unknown op ids and invalid addresses as that JSON (or as a string), faulting constants as
/// `null`, unsupported list constants as the list (or `[]`). `row_fixed`, `column_fixed` and
/// `version`, which [`Gene`] does not keep and nothing uses, are written as 0, and `fitness`
/// as `null`.
pub fn to_json(g: &Gene) -> String {
    let ops: Vec<Json> = g
        .ops
        .iter()
        .map(|o| match o {
            OpRef::Id(id) => json!(id),
            OpRef::Unknown(d) => reparse(d).unwrap_or_else(|| json!(d)),
        })
        .collect();
    let addrs = |v: &[AddrRef]| -> String {
        let a: Vec<Json> = v
            .iter()
            .map(|a| match a {
                AddrRef::Index(i) => json!(i),
                AddrRef::Invalid(why) => why
                    .strip_suffix(" is not an integer")
                    .and_then(reparse)
                    .unwrap_or_else(|| json!(why)),
            })
            .collect();
        compact(&Json::Array(a))
    };
    let consts = |v: &[ConstRef]| -> String {
        let items: Vec<String> = v.iter().map(const_text).collect();
        format!("[{}]", items.join(","))
    };
    let m = &g.memory;
    format!(
        concat!(
            "{{\"length\":{},\"meta_level\":{},\"gene\":{},\"input_gene\":{},",
            "\"input_gene_2\":{},\"output_gene\":{},\"constants_gene\":{},",
            "\"constants_gene_2\":{},\"row_fixed\":0,\"column_fixed\":0,\"version\":0,",
            "\"fitness\":null,\"memory\":{}}}"
        ),
        g.length,
        g.meta_level,
        compact(&Json::Array(ops)),
        addrs(&g.in1),
        addrs(&g.in2),
        addrs(&g.out),
        consts(&g.k1),
        consts(&g.k2),
        compact(&json!({
            "num_scalars": m.num_scalars,
            "num_vectors": m.num_vectors,
            "num_tensors": m.num_tensors,
            "scalar_size": m.scalar_shape,
            "vector_size": m.vector_shape,
            "tensor_size": m.tensor_shape,
        })),
    )
}

fn compact(v: &Json) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The JSON value a stored description was made from, when it was not shortened.
fn reparse(d: &str) -> Option<Json> {
    serde_json::from_str(d).ok()
}

fn const_text(c: &ConstRef) -> String {
    match c {
        ConstRef::F32(x) if x.is_nan() => "NaN".into(),
        ConstRef::F32(x) if x.is_infinite() => {
            if *x > 0.0 { "Infinity" } else { "-Infinity" }.into()
        }
        // serde_json writes an f64 with a fraction or an exponent, so it reads back as a float.
        ConstRef::F32(x) => compact(&json!(f64::from(*x))),
        ConstRef::Fault(_) => "null".into(),
        ConstRef::Unsupported(d) => match reparse(d) {
            Some(v @ Json::Array(_)) => compact(&v),
            _ => "[]".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Mode;
    use crate::formats::haz::{lower, parse_gene, requires_concrete_dims};
    use crate::loss::evaluate_function;
    use ncp_ir::DimModel;
    use ncp_ir::tensor::Tensor;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn random_genes_round_trip_through_parse_gene() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for k in 0..500 {
            let g = random_gene(&mut rng, k % 40);
            let text = to_json(&g);
            let back = parse_gene(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, g, "{text}");
        }
    }

    #[test]
    fn odd_entries_read_back_as_the_same_variants() {
        let text = r#"{"length": 3, "meta_level": 0, "gene": [1, "x", 200],
            "input_gene": [0, 1.5, "a"], "input_gene_2": [-16, true, 0], "output_gene": [0, 0, 0],
            "constants_gene": [1, null, [1.0]], "constants_gene_2": [NaN, Infinity, -1e-7],
            "row_fixed": 0, "column_fixed": 0, "version": 0,
            "memory": {"num_scalars": 5, "num_vectors": 5, "num_tensors": 5, "scalar_size": [],
                       "vector_size": [3], "tensor_size": [4, 3]}}"#;
        let g = parse_gene(text).unwrap();
        let back = parse_gene(&to_json(&g)).unwrap();
        assert_eq!(back.ops, g.ops);
        assert_eq!(back.in1, g.in1);
        assert_eq!(back.in2, g.in2);
        assert_eq!(back.memory, g.memory);
        assert!(matches!(back.k1[0], ConstRef::Fault(_)));
        assert!(matches!(back.k1[1], ConstRef::Fault(_)));
        assert_eq!(back.k1[2], g.k1[2]);
        assert!(matches!(back.k2[0], ConstRef::F32(x) if x.is_nan()));
        assert_eq!(back.k2[1..], g.k2[1..]);
    }

    #[test]
    fn random_genes_avoid_random_ops_and_often_depend_on_y_pred() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let yp = Tensor::from_rows(&[vec![0.3, -1.2, 0.7], vec![2.0, 0.1, -0.4]]).unwrap();
        let yt = Tensor::from_rows(&[vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]]).unwrap();
        let mut useful = 0;
        let total = 300;
        for _ in 0..total {
            let len = rng.random_range(1..12);
            let g = random_gene(&mut rng, len);
            assert!(g.ops.iter().all(|o| match o {
                OpRef::Id(id) => !RANDOM_OPS.contains(id),
                OpRef::Unknown(_) => false,
            }));
            let n = g.memory.len() as i64;
            for a in g.in1.iter().chain(&g.in2).chain(&g.out) {
                assert!(matches!(a, AddrRef::Index(i) if (-n..n).contains(i)));
            }
            let f = match lower(&g, "g", Mode::Compat, DimModel::Symbolic) {
                Ok((f, _)) => f,
                Err(e) if requires_concrete_dims(&e) => {
                    match lower(&g, "g", Mode::Compat, DimModel::Concrete { b: 2, c: 3 }) {
                        Ok((f, _)) => f,
                        Err(_) => continue,
                    }
                }
                Err(_) => continue,
            };
            let r = evaluate_function(&f, &yp, &yt, false).unwrap();
            let grad_nonzero = r
                .grad
                .iter()
                .flatten()
                .flatten()
                .any(|x| *x != 0.0 && x.is_finite());
            if r.fault.is_none() && r.loss.is_finite() && grad_nonzero {
                useful += 1;
            }
        }
        // About 27% with this seed; faults, zero gradients (floor, sign, ...) and non-finite
        // values account for the rest.
        assert!(
            useful * 5 >= total,
            "only {useful} of {total} genes give a finite loss with a gradient"
        );
    }
}
