//! The validator (`ncpc validate`): the Hivetrain subnet's validator role, after DAML's
//! (dml/validators.py). A round reads miners' submissions ([`submissions`], or an ncpc pool:
//! [`pool_source`]), finds copies by function signature, earliest wins ([`signature`]),
//! scores the originals with a protocol ([`scorer`]), resumably ([`state`]), keeps each
//! hotkey's best original and turns scores into DAML's top-k weights ([`weights`],
//! [`round`]), which go to a [`sink::WeightSink`]. docs/validator.md has the rules and every
//! difference from DAML.

pub mod pool_source;
pub mod round;
pub mod scorer;
pub mod signature;
pub mod sink;
pub mod state;
pub mod submissions;
pub mod weights;

/// Errors of a validator round.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The submissions directory could not be read.
    #[error(transparent)]
    Submissions(#[from] submissions::SubmissionsError),
    /// The pool's listing could not be read.
    #[error(transparent)]
    Pool(#[from] pool_source::PoolSourceError),
    /// The round state could not be read or written.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The weights could not be set.
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    /// The worker threads could not be started.
    #[error("worker threads: {0}")]
    Threads(String),
}
