//! The op table: `FunctionDecoder.decoding_map` as ncpc reads it (id 95's second entry wins).

/// Element-wise binary ops (torch broadcasting).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Bin {
    /// `torch.add`.
    Add,
    /// `torch.subtract`.
    Sub,
    /// `torch.multiply`.
    Mul,
    /// `torch.divide` (true division, no guard).
    Div,
    /// `torch.pow`.
    Pow,
    /// `torch.maximum`.
    Max,
    /// `torch.minimum`.
    Min,
    /// `torch.remainder`.
    Rem,
    /// `torch.hypot`.
    Hypot,
}

/// Element-wise unary ops.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Un {
    /// `torch.abs`.
    Abs,
    /// `torch.reciprocal`.
    Recip,
    /// `torch.sin`.
    Sin,
    /// `torch.cos`.
    Cos,
    /// `torch.tan`.
    Tan,
    /// `torch.arcsin`.
    Asin,
    /// `torch.arccos`.
    Acos,
    /// `torch.arctan`.
    Atan,
    /// `1 / (1 + exp(-a))`, literally.
    Sigmoid,
    /// `where(a > 0, a, 0.01 * a)`.
    LeakyRelu,
    /// `torch.relu`.
    Relu,
    /// `log(|a| + 1e-10)`.
    Log,
    /// `sqrt(|a|)`.
    Sqrt,
    /// `torch.sign`.
    Sign,
    /// `torch.floor`.
    Floor,
    /// `torch.ceil`.
    Ceil,
    /// `torch.round` (half to even).
    Round,
}

/// Random ops and the deterministic checks they make before drawing.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rand {
    /// `normal_` into a `[1]` tensor (17).
    GaussScalar,
    /// `normal_` into `a`'s shape, `a` exactly 2-D (18).
    GaussMatrix,
    /// `uniform_` into `a`'s shape, any rank (19, 49).
    UniformLike,
    /// `uniform_` into `a`'s shape, `a` exactly 2-D (81).
    UniformMatrix,
    /// `normal_` into `[a.shape[1]]` (101).
    GaussVector,
}

/// What an op does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 0: returns `None`, which is stored (the slot is poisoned).
    Nop,
    /// Element-wise binary.
    Bin(Bin),
    /// Element-wise unary.
    Un(Un),
    /// 16: a detached copy of constant 1.
    SetConst,
    /// A draw from torch's global RNG.
    Random(Rand),
    /// 46, 78: softmax over all elements (exceptions caught).
    SoftmaxAll,
    /// 47, 79: mean of all elements.
    MeanAll,
    /// 48, 80: unbiased std over dim 0 (exceptions caught).
    Std0,
    /// 53, 85: max of all elements.
    MaxAll,
    /// 54, 86: min of all elements.
    MinAll,
    /// 61, 102: `torch.dot`.
    Dot,
    /// 62, 93: `torch.norm(a, tensor)`, which always raises on torch 2.x.
    Norm,
    /// 95: `torch.full((b.shape[0],), a.item())`.
    Fill,
    /// 96: `a.repeat(b.shape[0], 1)`.
    RepeatRows,
    /// 97: `a.repeat(b.shape[1], 1).t()`.
    RepeatCols,
    /// 98: `torch.outer`.
    Outer,
    /// 99: `torch.matmul`.
    Matmul,
    /// 100: `a.t()`.
    Transpose,
}

/// One row of the op table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OpInfo {
    /// The Python function's name.
    pub name: &'static str,
    /// What it does.
    pub kind: Kind,
}

/// The table row of op id `id`, `None` for ids outside 0..=102.
pub fn op_info(id: u8) -> Option<OpInfo> {
    use Bin as B;
    use Kind as K;
    use Un as U;
    let (name, kind) = match id {
        0 => ("do_nothing", K::Nop),
        1 | 31 | 63 => ("add_scalar", K::Bin(B::Add)),
        2 | 32 | 64 => ("sub_scalar", K::Bin(B::Sub)),
        3 | 33 | 65 | 94 => ("multiply_scalar", K::Bin(B::Mul)),
        4 | 34 | 66 => ("divide_scalar", K::Bin(B::Div)),
        5 | 35 | 67 => ("abs_scalar", K::Un(U::Abs)),
        6 | 36 | 68 => ("reciprocal_scalar", K::Un(U::Recip)),
        7 | 37 | 69 => ("sin_scalar", K::Un(U::Sin)),
        8 | 38 | 70 => ("cos_scalar", K::Un(U::Cos)),
        9 | 39 | 71 => ("tan_scalar", K::Un(U::Tan)),
        10 | 40 | 72 => ("arcsin_scalar", K::Un(U::Asin)),
        11 | 41 | 73 => ("arccos_scalar", K::Un(U::Acos)),
        12 | 42 | 74 => ("arctan_scalar", K::Un(U::Atan)),
        13 | 43 | 75 => ("sigmoid", K::Un(U::Sigmoid)),
        14 | 44 | 76 => ("leaky_relu", K::Un(U::LeakyRelu)),
        15 | 45 | 77 => ("relu", K::Un(U::Relu)),
        16 => ("set_constant_scalar", K::SetConst),
        17 => ("gaussian_scalar", K::Random(Rand::GaussScalar)),
        18 => ("gaussian_matrix", K::Random(Rand::GaussMatrix)),
        19 => ("uniform_scalar", K::Random(Rand::UniformLike)),
        20 | 50 | 82 => ("log_scalar", K::Un(U::Log)),
        21 | 51 | 83 => ("power_scalar", K::Bin(B::Pow)),
        22 | 52 | 84 => ("sqrt_scalar", K::Un(U::Sqrt)),
        23 => ("max_scalar", K::Bin(B::Max)),
        24 => ("min_scalar", K::Bin(B::Min)),
        25 | 55 | 87 => ("mod_scalar", K::Bin(B::Rem)),
        26 | 56 | 88 => ("sign_scalar", K::Un(U::Sign)),
        27 | 57 | 89 => ("floor_scalar", K::Un(U::Floor)),
        28 | 58 | 90 => ("ceil_scalar", K::Un(U::Ceil)),
        29 | 59 | 91 => ("round_scalar", K::Un(U::Round)),
        30 | 60 | 92 => ("hypot_scalar", K::Bin(B::Hypot)),
        46 | 78 => ("stable_softmax", K::SoftmaxAll),
        47 | 79 => ("mean_vector", K::MeanAll),
        48 | 80 => ("std_axis", K::Std0),
        49 => ("uniform_vector", K::Random(Rand::UniformLike)),
        53 | 85 => ("max_vector", K::MaxAll),
        54 | 86 => ("min_vector", K::MinAll),
        61 | 102 => ("dot_vector", K::Dot),
        62 | 93 => ("norm_vector", K::Norm),
        81 => ("uniform_matrix", K::Random(Rand::UniformMatrix)),
        95 => ("broadcast_scalar_to_vector", K::Fill),
        96 => ("broadcast_vector_to_matrix_row", K::RepeatRows),
        97 => ("broadcast_vector_to_matrix_col", K::RepeatCols),
        98 => ("outer_product", K::Outer),
        99 => ("matmul", K::Matmul),
        100 => ("transpose", K::Transpose),
        101 => ("gaussian_vector", K::Random(Rand::GaussVector)),
        _ => return None,
    };
    Some(OpInfo { name, kind })
}

/// Which inputs an op reads the value of (the other is looked up but may hold `None`).
pub fn uses_inputs(kind: Kind) -> (bool, bool) {
    match kind {
        Kind::Nop | Kind::SetConst | Kind::Norm | Kind::Random(Rand::GaussScalar) => (false, false),
        Kind::Bin(_)
        | Kind::Dot
        | Kind::Fill
        | Kind::RepeatRows
        | Kind::RepeatCols
        | Kind::Outer
        | Kind::Matmul => (true, true),
        _ => (true, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_up_to_102_is_defined() {
        for id in 0..=102u8 {
            assert!(op_info(id).is_some(), "op {id}");
        }
        assert!(op_info(103).is_none());
        assert_eq!(op_info(95).map(|o| o.kind), Some(Kind::Fill));
        assert_eq!(op_info(53).map(|o| o.kind), Some(Kind::MaxAll));
        assert_eq!(op_info(23).map(|o| o.kind), Some(Kind::Bin(Bin::Max)));
    }
}
