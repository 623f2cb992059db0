//! The verifier collects every error with its location; the parser reports line and column;
//! the interpreter stops on fuel.

use ncp_ir::interp::{Outcome, run};
use ncp_ir::tensor::Tensor;
use ncp_ir::text::{parse_function, print_function};
use ncp_ir::verify::verify;
use ncp_ir::{BlockCall, ConstVal, Function, Imm, IrError, Opcode, Terminator, Type};

fn inputs() -> [Tensor; 2] {
    let yp = Tensor::from_rows(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
    let yt = Tensor::from_rows(&[vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]]).unwrap();
    [yp, yt]
}

#[test]
fn verifier_collects_every_error() {
    let bc = Type::f32_bc();
    let (mut f, b) = Function::new("bad", &[bc.clone(), bc.clone()], vec![Type::f32()]);
    let x = f.blocks[b].params[0];
    // A value typed wrongly on purpose, a use before definition, and a bad return.
    let wrong = f.push_inst(
        b,
        Opcode::Mean,
        Imm::Axis(ncp_ir::Axis::All),
        vec![x],
        bc.clone(),
    );
    let later = f.push_inst(b, Opcode::Neg, Imm::None, vec![x], bc.clone());
    if let ncp_ir::ValueDef::Inst(i) = f.values[wrong].def {
        f.insts[i].args = vec![later];
    }
    f.set_term(b, Terminator::Return(vec![x]));
    let Err(IrError::Verify(errs)) = verify(&f) else {
        panic!("expected verify errors")
    };
    assert!(
        errs.iter().any(|e| e.contains("does not dominate")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("rule gives f32")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("`return` does not match")),
        "{errs:?}"
    );
    assert!(errs.len() >= 3);
}

#[test]
fn verifier_checks_block_arguments() {
    let bc = Type::f32_bc();
    let (mut f, b) = Function::new("j", &[bc.clone(), bc.clone()], vec![Type::f32()]);
    let x = f.blocks[b].params[0];
    let t = f.add_block();
    f.add_block_param(t, Type::f32());
    f.set_term(
        b,
        Terminator::Jump(BlockCall {
            block: t,
            args: vec![x],
        }),
    );
    let p = f.blocks[t].params[0];
    f.set_term(t, Terminator::Return(vec![p]));
    let Err(IrError::Verify(errs)) = verify(&f) else {
        panic!()
    };
    assert!(
        errs.iter()
            .any(|e| e.contains("argument 0") && e.contains("f32[B,C]")),
        "{errs:?}"
    );
}

#[test]
fn parse_errors_carry_line_and_column() {
    let src = "function f(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<sideways> v0 : f32\n    return v2\n}\n";
    match parse_function(src) {
        Err(IrError::Parse { line, col, msg }) => {
            assert_eq!((line, col), (3, 15), "{msg}");
            assert!(msg.contains("axis"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    match parse_function(
        "function f(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    return v0\n",
    ) {
        Err(IrError::Parse { msg, .. }) => assert!(msg.contains("closing `}`"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn text_round_trips_with_control_flow_and_every_immediate() {
    let src = "\
function loop(f32[B,C], f32[B,C]) -> f32 {
block0(v0: f32[B,C], v1: f32[B,C]):
    v2 = const<0> : i64
    v3 = const<-inf> : f32
    v4 = const<true> : bool
    v5 = cast<f32> v4 : f32
    v6 = reshape<[C,B]> v0 : f32[C,B]
    v7 = dim<C> : i64
    jump block1(v2, v6)
block1(v8: i64, v9: f32[C,B]):
    v10 = const<1> : i64
    v11 = add v8, v10 : i64
    v12 = const<3> : i64
    v13 = gt v11, v12 : bool
    brif v13, block2, block1(v11, v9)
block2:
    v14 = sum<all> v9 : f32
    v15 = max v14, v3 : f32
    return v15
}
";
    let f = parse_function(src).unwrap();
    verify(&f).unwrap();
    assert_eq!(print_function(&f), src);
    let Outcome::Return(v) = run(&f, &inputs(), 1000).unwrap() else {
        panic!()
    };
    assert_eq!(v[0].data, vec![21.0]);
}

#[test]
fn interpreter_stops_on_fuel() {
    let bc = Type::f32_bc();
    let (mut f, b) = Function::new("spin", &[bc.clone(), bc], vec![Type::f32()]);
    let l = f.add_block();
    f.set_term(
        b,
        Terminator::Jump(BlockCall {
            block: l,
            args: vec![],
        }),
    );
    let c = f
        .ins(l, Opcode::Const, Imm::Const(ConstVal::F32(1.0)), &[])
        .unwrap();
    let _ = c;
    f.set_term(
        l,
        Terminator::Jump(BlockCall {
            block: l,
            args: vec![],
        }),
    );
    verify(&f).unwrap();
    match run(&f, &inputs(), 10_000) {
        Err(IrError::Eval(m)) => assert!(m.contains("fuel"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inputs_must_fit_the_signature() {
    let f = parse_function("function f(f32[B,C], f32[B,C]) -> f32 {\nblock0(v0: f32[B,C], v1: f32[B,C]):\n    v2 = mean<all> v0 : f32\n    return v2\n}\n").unwrap();
    let square = Tensor::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
    match run(&f, &[square.clone(), square], 100) {
        Err(IrError::Eval(m)) => assert!(m.contains("B != C"), "{m}"),
        other => panic!("{other:?}"),
    }
    let [a, _] = inputs();
    let other = Tensor::from_rows(&[vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 2.0, 3.0, 4.0]]).unwrap();
    assert!(run(&f, &[a, other], 100).is_err());
}
