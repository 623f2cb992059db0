//! The pool's public, read-only web pages (`/`, `/function/{id}`, `/miners`, their files under
//! `/ui/`) and the JSON they read beyond the miners' API: one function with its formula, IR,
//! PyTorch export, lineage and evaluations; the pool's history; the miners' standing. The pages
//! are static files (src/ui.rs) that fetch this JSON; everything from miners reaches the page
//! as text.

use super::error::ApiError;
use super::handlers::{Shared, seconds};
use crate::component::ComponentKind;
use crate::formats::{CompileOptions, Format, compile};
use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use ncp_ir::passes::{OptOptions, optimize};
use serde_json::{Value, json};

/// `GET /`: the dashboard.
pub async fn index() -> Response {
    crate::ui::serve("pool/index.html")
}

/// `GET /miners`: the miners' page.
pub async fn miners_page() -> Response {
    crate::ui::serve("pool/miners.html")
}

/// `GET /ui/{*path}`: the pages' files.
pub async fn ui_file(Path(path): Path<String>) -> Response {
    crate::ui::serve(&path)
}

/// `GET /function/{id}`: a function's page, or a 404 page naming the id.
pub async fn function_page(State(s): Shared, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<i64>() else {
        return crate::ui::not_found_page("function", &id);
    };
    match s.db(move |st| st.function_detail(n)).await {
        Ok(Some(_)) => crate::ui::serve("pool/function.html"),
        Ok(None) => crate::ui::not_found_page("function", &id),
        Err(e) => e.into_response(),
    }
}

use axum::extract::State;

/// The formula (plain and LaTeX), optimized IR and PyTorch module of a loss program, or why
/// there are none.
fn explain_loss(program: &str, id: i64) -> (Value, Value, Value, Value) {
    let opts = CompileOptions {
        format: Some(Format::Amm),
        name: format!("loss_{id}"),
        ..CompileOptions::default()
    };
    let mut f = match compile(program, &opts) {
        Ok(c) => c.func,
        Err(e) => {
            let why = json!(format!("the program does not compile: {e}"));
            return (Value::Null, why, Value::Null, Value::Null);
        }
    };
    if let Err(e) = optimize(&mut f, OptOptions::default()) {
        let why = json!(format!("the optimizer failed: {e}"));
        return (Value::Null, why, Value::Null, Value::Null);
    }
    let ir = json!(ncp_ir::text::print_function(&f));
    let plain = crate::explain::formula(&f, crate::explain::Style::Plain);
    let latex = crate::explain::formula(&f, crate::explain::Style::Latex);
    let (formula, why) = match (plain, latex) {
        (Ok(p), Ok(l)) => (
            json!({
                "plain": p.trim_end(),
                "latex": format!("\\begin{{aligned}}{}\\end{{aligned}}", l.trim_end()),
            }),
            Value::Null,
        ),
        (Err(e), _) | (_, Err(e)) => (Value::Null, json!(e.to_string())),
    };
    let torch =
        crate::explain::pytorch_module(&f, &format!("Loss{id}")).map_or(Value::Null, |t| json!(t));
    (formula, why, ir, torch)
}

/// `GET /api/v1/functions/{id}`.
pub async fn function_json(
    State(s): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let n = id
        .parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("no function {id:?}")))?;
    let d = s
        .db(move |st| st.function_detail(n))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no function {n}")))?;
    let program = d.program.clone();
    let loss = ComponentKind::from_task(&d.component_type) == Ok(ComponentKind::Loss);
    let cached = s.explained.lock().ok().and_then(|m| m.get(&n).cloned());
    let (formula, formula_error, ir, pytorch) = if let Some(v) = cached {
        (v[0].clone(), v[1].clone(), v[2].clone(), v[3].clone())
    } else if loss {
        // Compiling is CPU work: once per function (functions never change), off the
        // async workers.
        let e = tokio::task::spawn_blocking(move || explain_loss(&program, n))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("explaining function {n}: {e}")))?;
        if let Ok(mut m) = s.explained.lock() {
            if m.len() >= super::state::EXPLAINED_CAP {
                m.clear();
            }
            m.insert(n, json!([e.0, e.1, e.2, e.3]));
        }
        e
    } else {
        (
            Value::Null,
            json!(format!(
                "formulas are shown for losses; this is an {}",
                d.component_type
            )),
            Value::Null,
            Value::Null,
        )
    };
    let evaluations: Vec<Value> = d
        .evaluations
        .iter()
        .map(|(who, score, at)| json!({"evaluator": who, "score": score, "created_at": seconds(*at)}))
        .collect();
    Ok(Json(json!({
        "function_id": d.id,
        "component_type": d.component_type,
        "name": d.name,
        "evolver": d.evolver,
        "parent_id": d.parent_id,
        "created_at": seconds(d.created_at_ms),
        "consensus_score": d.consensus,
        "evaluation_count": d.evaluations.len(),
        "function": serde_json::from_str::<Value>(&d.program).unwrap_or(Value::Null),
        "formula": formula,
        "formula_error": formula_error,
        "ir": ir,
        "pytorch": pytorch,
        "children": d.children,
        "evaluations": evaluations,
    })))
}

/// `GET /api/v1/stats`.
pub async fn stats_json(State(s): Shared) -> Result<Json<Value>, ApiError> {
    let st = s.db(|st| st.pool_stats()).await?;
    let series = |v: &[(i64, i64)]| -> Vec<Value> {
        v.iter().map(|(t, n)| json!([seconds(*t), n])).collect()
    };
    Ok(Json(json!({
        "functions": st.functions,
        "miners": st.miners,
        "evaluations": st.evaluations,
        "consensus": st.consensus,
        "best_over_time": st.best_over_time.iter().map(|(t, b)| json!([seconds(*t), b])).collect::<Vec<_>>(),
        "submissions_per_hour": series(&st.submissions_per_hour),
        "evaluations_per_hour": series(&st.evaluations_per_hour),
    })))
}

/// `GET /api/v1/miners`.
pub async fn miners_json(State(s): Shared) -> Result<Json<Value>, ApiError> {
    let miners = s.db(|st| st.miner_summaries()).await?;
    let miners: Vec<Value> = miners
        .into_iter()
        .map(|m| {
            json!({
                "public_address": m.address,
                "balance": m.balance,
                "functions_evolved": m.functions_evolved,
                "evaluations": m.evaluations,
                "agreement": m.agreement,
            })
        })
        .collect();
    Ok(Json(json!({ "miners": miners })))
}
