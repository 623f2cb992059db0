//! Training and evaluation of candidate losses. So far: the datasets (`data`).

pub mod data;
