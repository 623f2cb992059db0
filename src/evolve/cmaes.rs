//! CMA-ES, the covariance matrix adaptation evolution strategy (Hansen, "The CMA Evolution
//! Strategy: A Tutorial", 2016, with the default parameters of its section 3 and the
//! structure of Hansen's reference `purecma`), for the few real constants of a loss
//! (GLO/TaylorGLO's second stage: tune the constants of a found structure).
//!
//! It minimizes. The covariance's eigendecomposition is computed by cyclic Jacobi rotations,
//! exact enough and simple for the handful of dimensions a loss has; normal samples come from
//! a seeded ChaCha8 stream (Box-Muller), so a run is reproducible. Tested on the sphere,
//! ellipsoid and Rosenbrock functions.

// Matrix code reads best with indices.
#![allow(clippy::needless_range_loop)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A CMA-ES run in `n` dimensions.
#[derive(Clone, Debug)]
pub struct CmaEs {
    n: usize,
    /// Offspring per generation.
    pub lambda: usize,
    weights: Vec<f64>,
    mueff: f64,
    cc: f64,
    cs: f64,
    c1: f64,
    cmu: f64,
    damps: f64,
    chi_n: f64,
    mean: Vec<f64>,
    sigma: f64,
    c: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
    d: Vec<f64>,
    pc: Vec<f64>,
    ps: Vec<f64>,
    generation: usize,
    rng: ChaCha8Rng,
    /// The best point seen and its value.
    pub best: Option<(Vec<f64>, f64)>,
    /// Function evaluations told so far.
    pub evaluations: usize,
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Eigendecomposition of a symmetric matrix by cyclic Jacobi rotations: (eigenvalues,
/// eigenvectors as columns of `v`).
fn jacobi(a: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut a = a.to_vec();
    let mut v = vec![vec![0.0; n]; n];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

impl CmaEs {
    /// Start at `mean` with step size `sigma`, drawing from `seed`.
    pub fn new(mean: Vec<f64>, sigma: f64, seed: u64) -> CmaEs {
        let n = mean.len().max(1);
        let nf = n as f64;
        let lambda = 4 + (3.0 * nf.ln()).floor() as usize;
        let mu = lambda / 2;
        let raw: Vec<f64> = (0..mu)
            .map(|i| (mu as f64 + 0.5).ln() - ((i + 1) as f64).ln())
            .collect();
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let mueff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);
        let cs = (mueff + 2.0) / (nf + mueff + 5.0);
        let c1 = 2.0 / ((nf + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((nf + 2.0).powi(2) + mueff));
        let damps = 1.0 + 2.0 * (((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let identity: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect();
        CmaEs {
            n,
            lambda,
            weights,
            mueff,
            cc,
            cs,
            c1,
            cmu,
            damps,
            chi_n,
            mean: if mean.is_empty() { vec![0.0] } else { mean },
            sigma,
            c: identity.clone(),
            b: identity,
            d: vec![1.0; n],
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            generation: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            best: None,
            evaluations: 0,
        }
    }

    /// The current mean.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The current step size.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The next generation's `lambda` candidate points.
    pub fn ask(&mut self) -> Vec<Vec<f64>> {
        (0..self.lambda)
            .map(|_| {
                let z: Vec<f64> = (0..self.n).map(|_| normal(&mut self.rng)).collect();
                // y = B * D * z
                let dz: Vec<f64> = z.iter().zip(&self.d).map(|(z, d)| z * d).collect();
                (0..self.n)
                    .map(|i| {
                        let y: f64 = (0..self.n).map(|j| self.b[i][j] * dz[j]).sum();
                        self.mean[i] + self.sigma * y
                    })
                    .collect()
            })
            .collect()
    }

    /// Update from the candidates of [`CmaEs::ask`] and their values (lower is better;
    /// NaN counts as worst).
    pub fn tell(&mut self, xs: &[Vec<f64>], values: &[f64]) {
        let n = self.n;
        self.evaluations += values.len();
        let mut order: Vec<usize> = (0..xs.len()).collect();
        let key = |v: f64| if v.is_nan() { f64::INFINITY } else { v };
        order.sort_by(|a, b| key(values[*a]).total_cmp(&key(values[*b])));
        if let Some(&i) = order.first()
            && self.best.as_ref().is_none_or(|(_, b)| key(values[i]) < *b)
        {
            self.best = Some((xs[i].clone(), key(values[i])));
        }
        let old = self.mean.clone();
        let mut mean = vec![0.0; n];
        for (w, &i) in self.weights.iter().zip(&order) {
            for k in 0..n {
                mean[k] += w * xs[i][k];
            }
        }
        self.mean = mean;
        let step: Vec<f64> = (0..n)
            .map(|k| (self.mean[k] - old[k]) / self.sigma)
            .collect();
        // C^(-1/2) * step = B * D^-1 * B^T * step
        let bt: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| self.b[i][j] * step[i]).sum::<f64>() / self.d[j])
            .collect();
        let inv_sqrt: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| self.b[i][j] * bt[j]).sum())
            .collect();
        let cs_f = (self.cs * (2.0 - self.cs) * self.mueff).sqrt();
        for k in 0..n {
            self.ps[k] = (1.0 - self.cs) * self.ps[k] + cs_f * inv_sqrt[k];
        }
        self.generation += 1;
        let ps_norm = self.ps.iter().map(|x| x * x).sum::<f64>().sqrt();
        let hsig =
            ps_norm / (1.0 - (1.0 - self.cs).powi(2 * self.generation as i32)).sqrt() / self.chi_n
                < 1.4 + 2.0 / (n as f64 + 1.0);
        let cc_f = (self.cc * (2.0 - self.cc) * self.mueff).sqrt();
        for k in 0..n {
            self.pc[k] = (1.0 - self.cc) * self.pc[k] + if hsig { cc_f * step[k] } else { 0.0 };
        }
        let delta = if hsig {
            0.0
        } else {
            self.c1 * self.cc * (2.0 - self.cc)
        };
        for i in 0..n {
            for j in 0..n {
                let rank_mu: f64 = self
                    .weights
                    .iter()
                    .zip(&order)
                    .map(|(w, &o)| {
                        w * (xs[o][i] - old[i]) / self.sigma * (xs[o][j] - old[j]) / self.sigma
                    })
                    .sum();
                self.c[i][j] = (1.0 - self.c1 - self.cmu + delta) * self.c[i][j]
                    + self.c1 * self.pc[i] * self.pc[j]
                    + self.cmu * rank_mu;
            }
        }
        self.sigma *= ((self.cs / self.damps) * (ps_norm / self.chi_n - 1.0)).exp();
        // Keep C symmetric and decompose it.
        for i in 0..n {
            for j in 0..i {
                let m = 0.5 * (self.c[i][j] + self.c[j][i]);
                self.c[i][j] = m;
                self.c[j][i] = m;
            }
        }
        let (ev, b) = jacobi(&self.c);
        self.d = ev.iter().map(|e| e.max(1e-20).sqrt()).collect();
        self.b = b;
    }

    /// Minimize `f` with at most `budget` evaluations; the best point and value.
    pub fn minimize(&mut self, budget: usize, f: &mut dyn FnMut(&[f64]) -> f64) -> (Vec<f64>, f64) {
        while self.evaluations + self.lambda <= budget.max(self.lambda) {
            let xs = self.ask();
            let values: Vec<f64> = xs.iter().map(|x| f(x)).collect();
            self.tell(&xs, &values);
            if self.sigma < 1e-12 {
                break;
            }
        }
        self.best
            .clone()
            .unwrap_or_else(|| (self.mean.clone(), f64::INFINITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sphere(x: &[f64]) -> f64 {
        x.iter().map(|v| (v - 1.0) * (v - 1.0)).sum()
    }

    fn ellipsoid(x: &[f64]) -> f64 {
        let n = x.len() as f64;
        x.iter()
            .enumerate()
            .map(|(i, v)| 1e4f64.powf(i as f64 / (n - 1.0)) * v * v)
            .sum()
    }

    fn rosenbrock(x: &[f64]) -> f64 {
        x.windows(2)
            .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
            .sum()
    }

    #[test]
    fn jacobi_diagonalizes() {
        let a = vec![
            vec![4.0, 1.0, 0.5],
            vec![1.0, 3.0, 0.2],
            vec![0.5, 0.2, 1.0],
        ];
        let (ev, v) = jacobi(&a);
        // A v_k = lambda_k v_k
        for k in 0..3 {
            for i in 0..3 {
                let av: f64 = (0..3).map(|j| a[i][j] * v[j][k]).sum();
                assert!((av - ev[k] * v[i][k]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn solves_the_sphere() {
        let (x, v) = CmaEs::new(vec![5.0; 5], 2.0, 1).minimize(3000, &mut |x| sphere(x));
        assert!(v < 1e-10, "{v} at {x:?}");
    }

    #[test]
    fn solves_an_ill_conditioned_ellipsoid() {
        let (_, v) = CmaEs::new(vec![1.0; 4], 1.0, 2).minimize(6000, &mut |x| ellipsoid(x));
        assert!(v < 1e-8, "{v}");
    }

    #[test]
    fn solves_rosenbrock() {
        let (x, v) = CmaEs::new(vec![0.0; 4], 0.5, 3).minimize(20_000, &mut |x| rosenbrock(x));
        assert!(v < 1e-8, "{v} at {x:?}");
    }

    #[test]
    fn runs_are_reproducible_and_nan_is_worst() {
        let run = |seed| {
            CmaEs::new(vec![2.0, -1.0], 1.0, seed).minimize(400, &mut |x| {
                if x[0] > 3.0 { f64::NAN } else { sphere(x) }
            })
        };
        assert_eq!(run(7), run(7));
        assert!(run(7).1 < 1e-6);
    }
}
