//! Genetic operators on DAML expression trees, with the semantics of the DEAP toolbox DAML's
//! miner registers: half-and-half initialisation (heights 1 to 3), subtree mutation
//! (`mutUniform` with `genFull` subtrees of height 0 to 2), one-point crossover
//! (`cxOnePoint`: a subtree below the root of each parent swapped), and a static height limit
//! (DAML's 90) under which a child that grows too tall is replaced by a parent
//! ([`Genome::within_limit`](super::genome::Genome::within_limit)). Ephemeral
//! constants are drawn when a subtree is made, uniform in [-1, 1) to 4 decimals, and stay fixed
//! after. Every child is a valid DAML tree over the miner primitive set.
//!
//! Nodes are numbered in prefix order, as DEAP's `PrimitiveTree` lists them.

use crate::formats::daml::{Expr, PSet, random_expr, random_full};
use rand::Rng;

/// DAML's height limit (`gp_tree_height`).
pub const MAX_HEIGHT: usize = 90;

/// The primitive set evolution draws from (the miner's).
const PSET: PSet = PSet::Miner;

/// Number of nodes.
pub fn size(e: &Expr) -> usize {
    match e {
        Expr::Call(_, args) => 1 + args.iter().map(size).sum::<usize>(),
        _ => 1,
    }
}

/// Height: 0 for a lone terminal, one more than the tallest argument otherwise.
pub fn height(e: &Expr) -> usize {
    match e {
        Expr::Call(_, args) => 1 + args.iter().map(height).max().unwrap_or(0),
        _ => 0,
    }
}

/// The subtree rooted at prefix-order node `index` (`index < size(e)`).
pub fn subtree(e: &Expr, index: usize) -> Option<&Expr> {
    if index == 0 {
        return Some(e);
    }
    let Expr::Call(_, args) = e else {
        return None;
    };
    let mut k = index - 1;
    for a in args {
        let n = size(a);
        if k < n {
            return subtree(a, k);
        }
        k -= n;
    }
    None
}

/// `e` with the subtree at prefix-order node `index` replaced by `new` (`e` itself when
/// `index` is out of range).
pub fn replace(e: &Expr, index: usize, new: &Expr) -> Expr {
    if index == 0 {
        return new.clone();
    }
    let Expr::Call(name, args) = e else {
        return e.clone();
    };
    let mut k = index - 1;
    let mut out = Vec::with_capacity(args.len());
    let mut done = false;
    for a in args {
        let n = size(a);
        if !done && k < n {
            out.push(replace(a, k, new));
            done = true;
        } else {
            if !done {
                k -= n;
            }
            out.push(a.clone());
        }
    }
    Expr::Call(name, out)
}

/// A random tree for the first population (DEAP's `genHalfAndHalf`, heights 1 to 3).
pub fn random_tree(rng: &mut impl Rng) -> Expr {
    random_expr(rng, 1, 3, PSET)
}

/// MSE over the miner set: `mean(safe_mul(safe_sub(x, y), safe_sub(x, y)))`.
pub fn seed_mse() -> Expr {
    let diff = Expr::Call("safe_sub", vec![Expr::X, Expr::Y]);
    Expr::Call(
        "mean",
        vec![Expr::Call("safe_mul", vec![diff.clone(), diff])],
    )
}

/// Subtree mutation: a random node's subtree replaced by a `full` tree of height 0 to 2.
pub fn mutate(e: &Expr, rng: &mut impl Rng) -> Expr {
    let index = rng.random_range(0..size(e));
    let new = random_full(rng, 0, 2, PSET);
    replace(e, index, &new)
}

/// One-point crossover: a random node below the root in each parent, their subtrees swapped.
/// Parents of a single node are returned unchanged (as DEAP does).
pub fn crossover(a: &Expr, b: &Expr, rng: &mut impl Rng) -> (Expr, Expr) {
    let (na, nb) = (size(a), size(b));
    if na < 2 || nb < 2 {
        return (a.clone(), b.clone());
    }
    let ia = rng.random_range(1..na);
    let ib = rng.random_range(1..nb);
    let (sa, sb) = match (subtree(a, ia), subtree(b, ib)) {
        (Some(sa), Some(sb)) => (sa.clone(), sb.clone()),
        _ => return (a.clone(), b.clone()),
    };
    (replace(a, ia, &sb), replace(b, ib, &sa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::daml::{parse_expr, print_expr, uses_only_miner_set};
    use crate::formats::{CompileOptions, compile};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn compiles(e: &Expr) {
        let text = serde_json::json!({ "expression": print_expr(e) }).to_string();
        compile(&text, &CompileOptions::default()).unwrap_or_else(|err| panic!("{err}\n{text}"));
    }

    #[test]
    fn prefix_indexing_visits_every_node_once() {
        let e = parse_expr("safe_add(sin(x), safe_mul(y, half))").unwrap();
        let shown: Vec<String> = (0..size(&e))
            .map(|i| print_expr(subtree(&e, i).unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                "safe_add(sin(x), safe_mul(y, half))",
                "sin(x)",
                "x",
                "safe_mul(y, half)",
                "y",
                "half"
            ]
        );
        assert!(subtree(&e, 6).is_none());
        assert_eq!(print_expr(&replace(&e, 3, &Expr::X)), "safe_add(sin(x), x)");
        assert_eq!(height(&e), 2);
    }

    #[test]
    fn children_are_valid_miner_set_trees_within_the_limit() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut pop: Vec<Expr> = (0..20).map(|_| random_tree(&mut rng)).collect();
        for round in 0..200 {
            let i = rng.random_range(0..pop.len());
            let j = rng.random_range(0..pop.len());
            let child = if round % 2 == 0 {
                crossover(&pop[i], &pop[j], &mut rng).0
            } else {
                mutate(&pop[i], &mut rng)
            };
            // The static limit (as `Genome::within_limit` applies it).
            let child = if height(&child) > 6 {
                pop[i].clone()
            } else {
                child
            };
            assert!(height(&child) <= 6.max(height(&pop[i])));
            assert!(uses_only_miner_set(&child));
            let back = parse_expr(&print_expr(&child)).unwrap();
            assert_eq!(back, child);
            compiles(&child);
            pop[i] = child;
        }
    }

    #[test]
    fn crossover_swaps_subtrees_below_the_root() {
        let a = parse_expr("safe_add(x, y)").unwrap();
        let b = parse_expr("sin(cos(one))").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20 {
            let (c, d) = crossover(&a, &b, &mut rng);
            assert!(matches!(&c, Expr::Call("safe_add", _)));
            assert!(matches!(&d, Expr::Call("sin", _)));
            assert_eq!(size(&c) + size(&d), size(&a) + size(&b));
        }
        let lone = Expr::X;
        assert_eq!(crossover(&lone, &b, &mut rng), (lone.clone(), b.clone()));
    }

    #[test]
    fn the_seed_is_mse() {
        compiles(&seed_mse());
        assert_eq!(
            print_expr(&seed_mse()),
            "mean(safe_mul(safe_sub(x, y), safe_sub(x, y)))"
        );
    }
}
