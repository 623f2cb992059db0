//! JSON numbers with non-finite values, as the public systems write them: NaN and the
//! infinities travel as the strings "NaN", "Infinity" and "-Infinity".

use serde_json::Value as Json;

/// Encode an f32 for JSON.
pub fn encode(x: f32) -> Json {
    if x.is_nan() {
        Json::from("NaN")
    } else if x == f32::INFINITY {
        Json::from("Infinity")
    } else if x == f32::NEG_INFINITY {
        Json::from("-Infinity")
    } else {
        // Through f64 exactly; the shortest f32 text keeps the JSON readable and exact.
        let s = format!("{x:?}");
        serde_json::from_str(&s).unwrap_or(Json::from(x as f64))
    }
}

/// Decode a JSON number or one of the non-finite strings.
pub fn decode(v: &Json) -> Option<f32> {
    match v {
        Json::Number(n) => n.as_f64().map(|x| x as f32),
        Json::String(s) => match s.as_str() {
            "NaN" | "nan" => Some(f32::NAN),
            "Infinity" | "inf" => Some(f32::INFINITY),
            "-Infinity" | "-inf" => Some(f32::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Decode a matrix (list of equal-length lists). `Err` says what is wrong and where.
pub fn decode_matrix(v: &Json, name: &str) -> Result<Vec<Vec<f32>>, String> {
    let Json::Array(rows) = v else {
        return Err(format!("`{name}` must be a list of rows"));
    };
    if rows.is_empty() {
        return Err(format!("`{name}` has no rows"));
    }
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let Json::Array(cells) = r else {
            return Err(format!("`{name}` row {i} is not a list"));
        };
        let row = cells
            .iter()
            .enumerate()
            .map(|(j, c)| decode(c).ok_or_else(|| format!("`{name}`[{i}][{j}] is not a number")))
            .collect::<Result<Vec<f32>, String>>()?;
        if row.is_empty() {
            return Err(format!("`{name}` row {i} is empty"));
        }
        if let Some(first) = out.first() {
            let first: &Vec<f32> = first;
            if first.len() != row.len() {
                return Err(format!(
                    "`{name}` row {i} has {} values, row 0 has {}",
                    row.len(),
                    first.len()
                ));
            }
        }
        out.push(row);
    }
    Ok(out)
}

/// Encode a matrix.
pub fn encode_matrix(m: &[Vec<f32>]) -> Json {
    Json::Array(
        m.iter()
            .map(|r| Json::Array(r.iter().map(|x| encode(*x)).collect()))
            .collect(),
    )
}

/// A float that travels as a JSON number, or as "NaN"/"Infinity"/"-Infinity" when not finite.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct LenientF64(pub f64);

impl serde::Serialize for LenientF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.0;
        if x.is_nan() {
            s.serialize_str("NaN")
        } else if x == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if x == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else {
            s.serialize_f64(x)
        }
    }
}

impl<'de> serde::Deserialize<'de> for LenientF64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match <serde_json::Value as serde::Deserialize>::deserialize(d)? {
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(LenientF64)
                .ok_or_else(|| serde::de::Error::custom("not a float")),
            serde_json::Value::String(s) => match s.as_str() {
                "NaN" | "nan" => Ok(LenientF64(f64::NAN)),
                "Infinity" | "inf" => Ok(LenientF64(f64::INFINITY)),
                "-Infinity" | "-inf" => Ok(LenientF64(f64::NEG_INFINITY)),
                other => Err(serde::de::Error::custom(format!(
                    "`{other}` is not a number"
                ))),
            },
            other => Err(serde::de::Error::custom(format!(
                "expected a number, found {other}"
            ))),
        }
    }
}

/// Serde `with` module for an `f64` field that may be non-finite (written as [`LenientF64`]).
pub mod lenient {
    use super::LenientF64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        LenientF64(*x).serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        LenientF64::deserialize(d).map(|l| l.0)
    }
}

/// Serde `with` module for an `Option<f64>` that may be non-finite.
pub mod lenient_opt {
    use super::LenientF64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        x.map(LenientF64).serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<LenientF64>::deserialize(d).map(|o| o.map(|l| l.0))
    }
}

/// Serde `with` module for a `Vec<f64>` whose values may be non-finite.
pub mod lenient_vec {
    use super::LenientF64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let w: Vec<LenientF64> = v.iter().map(|x| LenientF64(*x)).collect();
        w.serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<LenientF64>::deserialize(d).map(|v| v.into_iter().map(|l| l.0).collect())
    }
}

/// Serde `with` module for a string-keyed map of `f64` values that may be non-finite.
pub mod lenient_map {
    use super::LenientF64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;

    /// Serialize (keys sorted, so files are stable).
    pub fn serialize<S: Serializer>(m: &HashMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        let sorted: std::collections::BTreeMap<&String, LenientF64> =
            m.iter().map(|(k, v)| (k, LenientF64(*v))).collect();
        sorted.serialize(s)
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, f64>, D::Error> {
        HashMap::<String, LenientF64>::deserialize(d)
            .map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}
