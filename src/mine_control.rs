//! What the miner's page may change while the miner runs (pause, task type, alternate,
//! delay), shared by the mining loop (src/mine.rs), which reads it between cycles, and the page
//! (src/mine_ui.rs), which writes it.

use crate::pool::protocol::TaskType;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the page may change while the miner runs: read by the mining loop between cycles.
#[derive(Debug)]
pub struct MinerControl {
    paused: AtomicBool,
    settings: Mutex<Settings>,
    /// A task type chosen on the page, taken by the next cycle.
    next_task_type: Mutex<Option<TaskType>>,
}

/// The settings the page can change.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Settings {
    /// The task type of the next cycle (and the first).
    pub task_type: TaskType,
    /// Switch task types after each cycle.
    pub alternate: bool,
    /// Pause between cycles.
    pub delay: Duration,
}

impl MinerControl {
    /// Control starting from `settings`, not paused.
    pub fn new(settings: Settings) -> MinerControl {
        MinerControl {
            paused: AtomicBool::new(false),
            settings: Mutex::new(settings),
            next_task_type: Mutex::new(None),
        }
    }

    /// Whether new cycles are held back.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Hold back (or let go) new cycles; the running one finishes.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change some settings; a new task type applies from the next cycle.
    pub fn update(
        &self,
        task_type: Option<TaskType>,
        alternate: Option<bool>,
        delay: Option<Duration>,
    ) {
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = task_type {
            s.task_type = t;
            *self
                .next_task_type
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(t);
        }
        if let Some(a) = alternate {
            s.alternate = a;
        }
        if let Some(d) = delay {
            s.delay = d;
        }
    }

    /// The task type chosen on the page since the last call, if any.
    pub fn take_task_type(&self) -> Option<TaskType> {
        self.next_task_type
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Wait while paused (checking `stop`); true when it waited at all.
    pub fn wait_while_paused(&self, stop: &AtomicBool) -> bool {
        let mut waited = false;
        while self.is_paused() && !stop.load(Ordering::Relaxed) {
            waited = true;
            std::thread::sleep(Duration::from_millis(100));
        }
        waited
    }
}
