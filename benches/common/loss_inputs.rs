//! The `[b, c]` inputs the loss benches use (benches/peers/loss_eval.py builds the same):
//! y_pred in [-1, 1] from a fixed pattern, y_true one-hot.

/// `(y_pred, y_true)`, row-major.
pub fn inputs(b: usize, c: usize) -> (Vec<f32>, Vec<f32>) {
    let yp = (0..b * c)
        .map(|k| ((k / c * 7 + k % c * 3) % 11) as f32 / 5.0 - 1.0)
        .collect();
    let yt = (0..b * c)
        .map(|k| ((k % c) == (k / c) % c) as u8 as f32)
        .collect();
    (yp, yt)
}
