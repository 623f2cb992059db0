//! Ctrl-C for long-running commands: the first press asks the work to stop at the next safe
//! point (finish or release a task, write a checkpoint); the second exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Install the handler; the flag turns true on the first Ctrl-C. `what` finishes the
/// sentence "stopping after ...".
pub fn install(what: &'static str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let presses = Arc::new(AtomicUsize::new(0));
    let (s, p) = (stop.clone(), presses.clone());
    let _ = ctrlc::set_handler(move || {
        if p.fetch_add(1, Ordering::SeqCst) == 0 {
            s.store(true, Ordering::SeqCst);
            eprintln!("\nncpc: stopping after {what} (Ctrl-C again to quit now)");
        } else {
            std::process::exit(130);
        }
    });
    stop
}
