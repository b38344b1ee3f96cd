//! Gates, announced on Pub/Sub.

/// A gate opened.
#[tidings::event(channel = "gates", version = 1)]
pub struct GateOpened {
    /// Which gate.
    pub gate: String,
}
