//! The Python semantics the AMM interpreter applies to JSON values: `int(x)`, numeric
//! comparison, dictionary lookup by key. JSON `true`/`false` behave as Python's `True`/`False`
//! (which are the integers 1 and 0).

use serde_json::Value as Json;

/// What Python's `int(x)` gives.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PyInt {
    /// An integer.
    Ok(i64),
    /// `ValueError` or `TypeError` (the interpreter catches these).
    Invalid,
    /// `OverflowError` (int of an infinity; the interpreter does not catch it).
    Overflow,
}

/// Python's `int(x)` for a JSON value.
pub fn py_int(v: &Json) -> PyInt {
    match v {
        Json::Bool(b) => PyInt::Ok(*b as i64),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                PyInt::Ok(i)
            } else if n.as_u64().is_some() {
                PyInt::Ok(i64::MAX) // beyond any register or address; only its size matters
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.is_nan() {
                    PyInt::Invalid
                } else if f.is_infinite() {
                    PyInt::Overflow
                } else {
                    PyInt::Ok(f.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64)
                }
            }
        }
        Json::String(s) => parse_int_str(s).map_or(PyInt::Invalid, PyInt::Ok),
        _ => PyInt::Invalid,
    }
}

/// Python's `int(str)` for decimal text: surrounding whitespace, an optional sign, digits with
/// single underscores between them.
fn parse_int_str(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    if !digits.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let v: i64 = clean.parse().ok().or(Some(i64::MAX))?;
    Some(if neg { -v } else { v })
}

/// The value as a Python number (bool included), or `None` when comparing it with a number
/// raises `TypeError`.
pub fn py_num(v: &Json) -> Option<f64> {
    match v {
        Json::Bool(b) => Some(*b as u8 as f64),
        Json::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Whether the value is a Python float (not an int or bool).
pub fn is_float(v: &Json) -> bool {
    matches!(v, Json::Number(n) if !n.is_i64() && !n.is_u64())
}

/// The integer a value equals when used as a dictionary key (`d.get(key)`): ints, bools and
/// integral floats find integer keys. `Err(())` when the key is unhashable (a list or object:
/// `TypeError`).
pub fn dict_key(v: &Json) -> Result<Option<i64>, ()> {
    match v {
        Json::Array(_) | Json::Object(_) => Err(()),
        Json::Bool(b) => Ok(Some(*b as i64)),
        Json::Number(n) => Ok(match n.as_i64() {
            Some(i) => Some(i),
            None => n
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64),
        }),
        _ => Ok(None),
    }
}

/// `params[i]` if present, else the default.
pub fn param<'a>(params: &'a [Json], i: usize, default: &'a Json) -> &'a Json {
    params.get(i).unwrap_or(default)
}
