//! The component types of the Neural Component Pool: what a function is (a loss, an
//! activation, an optimizer), as tasks name it in their `component_type`.

use std::fmt;

/// A component type.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// A loss function `(y_pred, y_true) -> scalar`.
    #[default]
    Loss,
    /// An elementwise activation `x -> act(x)` (AMM: S0 = x).
    Activation,
    /// An optimizer's update rule (AMM scores every one 0.0: see docs/evaluation.md).
    Optimizer,
}

impl ComponentKind {
    /// Every kind, in order.
    pub const ALL: [ComponentKind; 3] = [
        ComponentKind::Loss,
        ComponentKind::Activation,
        ComponentKind::Optimizer,
    ];

    /// The kind a task's `component_type` names, as AMM's client maps it: `loss` and
    /// `loss_function`, `activation` and `activation_function`, `optimizer` (AMM has no
    /// `optimizer_function`: its client refuses such a task and submits nothing). `Err` says
    /// why not.
    pub fn from_task(component_type: &str) -> Result<ComponentKind, String> {
        match component_type.trim().to_ascii_lowercase().as_str() {
            "loss" | "loss_function" => Ok(ComponentKind::Loss),
            "activation" | "activation_function" => Ok(ComponentKind::Activation),
            "optimizer" => Ok(ComponentKind::Optimizer),
            other => Err(format!(
                "unknown component type {other:?} (the pool's types are loss/loss_function, activation/activation_function and optimizer)"
            )),
        }
    }

    /// The name the pool's tasks use for it.
    pub fn name(self) -> &'static str {
        match self {
            ComponentKind::Loss => "loss",
            ComponentKind::Activation => "activation",
            ComponentKind::Optimizer => "optimizer",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ComponentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ComponentKind::from_task(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amm_names_map_as_amm_maps_them() {
        assert_eq!(
            ComponentKind::from_task("loss_function"),
            Ok(ComponentKind::Loss)
        );
        assert_eq!(
            ComponentKind::from_task(" Activation "),
            Ok(ComponentKind::Activation)
        );
        assert_eq!(
            ComponentKind::from_task("optimizer"),
            Ok(ComponentKind::Optimizer)
        );
        assert!(ComponentKind::from_task("optimizer_function").is_err());
        assert!(ComponentKind::from_task("regularization").is_err());
        for k in ComponentKind::ALL {
            assert_eq!(ComponentKind::from_task(k.name()), Ok(k));
        }
    }
}
