//! The type rule of every op: result types from operand types, used by the builder, the
//! parser and the verifier.

use super::{Axis, Class, Imm, ImmKind, Opcode};
use crate::types::{DType, Dim, Shape, Type, broadcast, numel_signature};

fn check_dtype(op: Opcode, t: &Type) -> Result<(), String> {
    if op.info().dtypes.contains(&t.dtype) {
        Ok(())
    } else {
        Err(format!(
            "`{}` does not accept {} operands",
            op.name(),
            t.dtype
        ))
    }
}

fn axis_ok(axis: Axis, t: &Type, op: Opcode) -> Result<(), String> {
    match axis {
        Axis::All => Ok(()),
        Axis::Index(i) if (i as usize) < t.rank() => Ok(()),
        Axis::Index(i) => Err(format!("`{}` axis {i} is out of range for {t}", op.name())),
    }
}

fn remove_axis(shape: &[Dim], axis: Axis) -> Shape {
    match axis {
        Axis::All => Vec::new(),
        Axis::Index(i) => {
            let mut s = shape.to_vec();
            s.remove(i as usize);
            s
        }
    }
}

fn bcast(op: Opcode, ts: &[&Type]) -> Result<Shape, String> {
    let mut shape: Shape = Vec::new();
    for t in ts {
        shape = broadcast(&shape, &t.shape).ok_or_else(|| {
            format!(
                "`{}` operands do not broadcast: {}",
                op.name(),
                join_types(ts)
            )
        })?;
    }
    Ok(shape)
}

fn join_types(ts: &[&Type]) -> String {
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Infer the result type of `op` applied to operands of types `args` with immediate `imm`.
/// This is the type rule used by the builder, the parser and the verifier.
pub fn infer_type(op: Opcode, imm: &Imm, args: &[&Type]) -> Result<Type, String> {
    let info = op.info();
    if args.len() != info.arity {
        return Err(format!(
            "`{}` takes {} operands, got {}",
            op.name(),
            info.arity,
            args.len()
        ));
    }
    let imm_kind = match imm {
        Imm::None => ImmKind::None,
        Imm::Const(_) => ImmKind::Const,
        Imm::Axis(_) => ImmKind::Axis,
        Imm::DType(_) => ImmKind::DType,
        Imm::Dim(_) => ImmKind::Dim,
        Imm::Shape(_) => ImmKind::Shape,
    };
    if imm_kind != info.imm {
        return Err(format!(
            "`{}` takes a {:?} immediate, got {:?}",
            op.name(),
            info.imm,
            imm_kind
        ));
    }
    match info.class {
        Class::Leaf => match imm {
            Imm::Const(c) => Ok(Type::scalar(c.dtype())),
            Imm::Dim(Dim::Fixed(_)) => Err("`dim` takes B or C".into()),
            _ => Ok(Type::scalar(DType::I64)),
        },
        Class::Unary => {
            check_dtype(op, args[0])?;
            Ok(args[0].clone())
        }
        Class::Binary | Class::Compare => {
            check_dtype(op, args[0])?;
            if args[0].dtype != args[1].dtype {
                return Err(format!(
                    "`{}` operands differ in dtype: {}",
                    op.name(),
                    join_types(args)
                ));
            }
            let shape = bcast(op, args)?;
            let dtype = if info.class == Class::Compare {
                DType::Bool
            } else {
                args[0].dtype
            };
            Ok(Type::new(dtype, shape))
        }
        Class::Select => {
            if args[0].dtype != DType::Bool {
                return Err(format!("`select` condition must be bool, got {}", args[0]));
            }
            if args[1].dtype != args[2].dtype {
                return Err(format!(
                    "`select` arms differ in dtype: {}",
                    join_types(args)
                ));
            }
            Ok(Type::new(args[1].dtype, bcast(op, args)?))
        }
        Class::Cast => match imm {
            Imm::DType(d) => Ok(args[0].with_dtype(*d)),
            _ => unreachable!("immediate kind checked above"),
        },
        Class::Like => Ok(args[0].with_dtype(DType::F32)),
        Class::Reduce => {
            check_dtype(op, args[0])?;
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            if args[0].is_scalar() && *axis != Axis::All {
                return Err(format!("`{}` over an axis of a scalar", op.name()));
            }
            axis_ok(*axis, args[0], op)?;
            Ok(Type::new(args[0].dtype, remove_axis(&args[0].shape, *axis)))
        }
        Class::Special => infer_special(op, imm, args),
    }
}

fn infer_special(op: Opcode, imm: &Imm, args: &[&Type]) -> Result<Type, String> {
    check_dtype(op, args[0])?;
    match op {
        Opcode::AnyNonzero => Ok(Type::scalar(DType::Bool)),
        Opcode::Matmul => {
            let (a, b) = (args[0], args[1]);
            if b.dtype != a.dtype {
                return Err(format!("`matmul` operands differ in dtype: {a}, {b}"));
            }
            let shape = match (a.shape.as_slice(), b.shape.as_slice()) {
                ([m, k], [k2, n]) if k == k2 => vec![*m, *n],
                ([m, k], [k2]) if k == k2 => vec![*m],
                ([k], [k2, n]) if k == k2 => vec![*n],
                ([k], [k2]) if k == k2 => vec![],
                _ => return Err(format!("`matmul` shapes do not fit: {a}, {b}")),
            };
            Ok(Type::new(a.dtype, shape))
        }
        Opcode::Transpose => match args[0].shape.as_slice() {
            [m, n] => Ok(Type::new(args[0].dtype, vec![*n, *m])),
            _ => Err(format!(
                "`transpose` needs a rank-2 operand, got {}",
                args[0]
            )),
        },
        Opcode::Softmax => {
            if args[0].is_scalar() {
                return Err("`softmax` of a scalar".into());
            }
            Ok(args[0].clone())
        }
        Opcode::Reshape => {
            let Imm::Shape(s) = imm else {
                unreachable!("immediate kind checked above")
            };
            if numel_signature(s) != numel_signature(&args[0].shape) {
                return Err(format!(
                    "`reshape` of {} to a shape with another element count",
                    args[0]
                ));
            }
            Ok(Type::new(args[0].dtype, s.clone()))
        }
        Opcode::Expand => {
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            let like = args[1];
            axis_ok(*axis, like, op)?;
            if *axis == Axis::All && !args[0].is_scalar() {
                return Err(format!("`expand<all>` needs a scalar, got {}", args[0]));
            }
            if remove_axis(&like.shape, *axis) != args[0].shape && *axis != Axis::All {
                return Err(format!("`expand` of {} does not fit {like}", args[0]));
            }
            Ok(like.with_dtype(args[0].dtype))
        }
        Opcode::BroadcastLike => match broadcast(&args[0].shape, &args[1].shape) {
            Some(s) if s == args[1].shape => Ok(args[1].with_dtype(args[0].dtype)),
            _ => Err(format!("`broadcast_like` of {} to {}", args[0], args[1])),
        },
        Opcode::SumTo => match broadcast(&args[1].shape, &args[0].shape) {
            Some(s) if s == args[0].shape => Ok(args[1].with_dtype(args[0].dtype)),
            _ => Err(format!("`sum_to` of {} to {}", args[0], args[1])),
        },
        Opcode::Count => {
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            axis_ok(*axis, args[0], op)?;
            Ok(Type::f32())
        }
        Opcode::MaxMask | Opcode::MinMask => {
            let Imm::Axis(axis) = imm else {
                unreachable!("immediate kind checked above")
            };
            axis_ok(*axis, args[0], op)?;
            Ok(args[0].with_dtype(DType::Bool))
        }
        _ => unreachable!("{op:?} is not a special op"),
    }
}
