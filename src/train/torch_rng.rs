//! PyTorch's CPU random number generator, reproduced bit for bit: the Mersenne Twister
//! (mt19937) that `torch.manual_seed` seeds, and the algorithms torch's CPU kernels build on
//! it for `randperm`, `randint` and float32 `uniform_` (what `nn.Linear`'s initialisation
//! calls). Tested against values PyTorch itself printed (tests/reference/amm_exact/).
//!
//! What torch does, in its own terms (ATen's `CPUGeneratorImpl`, `DistributionsHelper.h`,
//! `TransformationHelper.h`, the CPU `randperm` and the serial CPU `uniform_` kernel):
//! - `manual_seed(s)` restarts mt19937 from the low 32 bits of `s` (standard mt19937
//!   initialisation);
//! - `random()` is one 32-bit draw; `random64()` is two, the first the high half;
//! - `randperm(n)` starts from `0..n` and for `i` in `0..n-1` swaps element `i` with element
//!   `i + random() % (n - i)`;
//! - `randint(lo, hi)` is `lo + draw % (hi - lo)`, the draw `random64()` when the range is
//!   at least 2^28 and `random()` below (torch before 2.x switched at 2^32; AMM's ranges are
//!   far below either);
//! - float32 `uniform_(from, to)` fills the tensor in order, each element
//!   `(random() & (2^24 - 1)) * 2^-24 * (to - from) + from` in float32 with the multiply and
//!   add fused (torch's CPU kernels are built per instruction set, and the AVX2 and AVX-512
//!   builds, which every x86 CPU since 2013 runs, contract it into one FMA), `from` and `to`
//!   first rounded to float32.

/// The state size of mt19937.
const N: usize = 624;
/// The twist offset of mt19937.
const M: usize = 397;

/// torch's CPU generator: an mt19937 engine seeded as `torch.manual_seed` seeds it.
#[derive(Clone)]
pub struct TorchGenerator {
    state: Box<[u32; N]>,
    next: usize,
}

impl std::fmt::Debug for TorchGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TorchGenerator {{ next: {} }}", self.next)
    }
}

impl TorchGenerator {
    /// The generator after `torch.manual_seed(seed)` (only the low 32 bits count, as in torch).
    pub fn manual_seed(seed: u64) -> TorchGenerator {
        let mut state = Box::new([0u32; N]);
        state[0] = seed as u32;
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        TorchGenerator { state, next: N }
    }

    fn twist(&mut self) {
        let s = &mut self.state;
        for i in 0..N {
            let y = (s[i] & 0x8000_0000) | (s[(i + 1) % N] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            s[i] = s[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.next = 0;
    }

    /// One 32-bit draw (torch's `random()`).
    pub fn random(&mut self) -> u32 {
        if self.next >= N {
            self.twist();
        }
        let mut y = self.state[self.next];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// One 64-bit draw (torch's `random64()`): two 32-bit draws, the first the high half.
    pub fn random64(&mut self) -> u64 {
        let hi = self.random() as u64;
        let lo = self.random() as u64;
        (hi << 32) | lo
    }

    /// `torch.randperm(n)` on the CPU.
    pub fn randperm(&mut self, n: usize) -> Vec<usize> {
        let mut r: Vec<usize> = (0..n).collect();
        for i in 0..n.saturating_sub(1) {
            let z = (self.random() as u64 % (n - i) as u64) as usize;
            r.swap(i, i + z);
        }
        r
    }

    /// One draw of `torch.randint(low, high, ...)` (int64): `low + draw % (high - low)`.
    /// `high` must exceed `low`.
    pub fn randint(&mut self, low: i64, high: i64) -> i64 {
        let range = high.wrapping_sub(low) as u64;
        if range == 0 {
            return low;
        }
        let draw = if range >= 1 << 28 {
            self.random64()
        } else {
            self.random() as u64
        };
        low.wrapping_add((draw % range) as i64)
    }

    /// `n` draws of `torch.randint(low, high, (n,))`, in order.
    pub fn randint_n(&mut self, low: i64, high: i64, n: usize) -> Vec<i64> {
        (0..n).map(|_| self.randint(low, high)).collect()
    }

    /// One float32 `uniform_(from, to)` element.
    pub fn uniform_f32(&mut self, from: f32, to: f32) -> f32 {
        const MASK: u32 = (1 << 24) - 1;
        const DIVISOR: f32 = 1.0 / (1u32 << 24) as f32;
        let x = (self.random() & MASK) as f32 * DIVISOR;
        x.mul_add(to - from, from)
    }

    /// Fill `out` as float32 `tensor.uniform_(from, to)` fills a contiguous tensor (the bounds
    /// are Python floats, rounded to float32 first).
    pub fn uniform_fill(&mut self, out: &mut [f32], from: f64, to: f64) {
        let (from, to) = (from as f32, to as f32);
        for v in out {
            *v = self.uniform_f32(from, to);
        }
    }
}

/// The bound `nn.init.kaiming_uniform_(w, a=sqrt(5))` draws a weight of fan-in `fan_in`
/// from, computed in doubles as torch's Python computes it (mathematically 1/sqrt(fan_in)).
pub fn kaiming_uniform_bound(fan_in: usize) -> f64 {
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let std = gain / (fan_in as f64).sqrt();
    3f64.sqrt() * std
}

/// The bound `nn.Linear` draws its bias from: `1 / sqrt(fan_in)` (0 for no inputs).
pub fn linear_bias_bound(fan_in: usize) -> f64 {
    if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f64).sqrt()
    }
}

/// An `nn.Linear(ins, outs)` initialised as torch initialises it, drawing from `g`:
/// `(weight, bias)` with the weight in torch's layout, `[outs][ins]` row-major.
pub fn linear_init(g: &mut TorchGenerator, ins: usize, outs: usize) -> (Vec<f32>, Vec<f32>) {
    let mut w = vec![0f32; ins * outs];
    let bw = kaiming_uniform_bound(ins);
    g.uniform_fill(&mut w, -bw, bw);
    let mut b = vec![0f32; outs];
    let bb = linear_bias_bound(ins);
    g.uniform_fill(&mut b, -bb, bb);
    (w, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_standard_sequence() {
        // The C++ standard fixes the 10000th output of mt19937 default-seeded (5489).
        let mut g = TorchGenerator::manual_seed(5489);
        let mut last = 0;
        for _ in 0..10000 {
            last = g.random();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn randperm_is_a_permutation() {
        let mut g = TorchGenerator::manual_seed(1);
        let mut p = g.randperm(100);
        p.sort_unstable();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
        assert!(TorchGenerator::manual_seed(1).randperm(0).is_empty());
    }
}
