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

/// Serde `serialize_with` for an f64 that may be non-finite: a number, or one of the strings
/// above (`-Infinity` for a failed candidate's score, for example).
pub fn serialize_f64<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(*x)
    } else if x.is_nan() {
        s.serialize_str("NaN")
    } else if *x > 0.0 {
        s.serialize_str("Infinity")
    } else {
        s.serialize_str("-Infinity")
    }
}
