//! Compatibility modes between versions of an event, as Confluent Schema
//! Registry names them: what `#[event(compat = "…")]` declares and what the
//! schema check enforces.

use std::fmt;
use std::str::FromStr;

/// Compatibility mode, as Confluent Schema Registry defines them.
///
/// - `Backward`: readers of the new version read data written with the
///   previous one (the default: upgrade consumers first).
/// - `Forward`: readers of the previous version read data written with the new one.
/// - `Full`: both.
/// - The `*Transitive` forms check against every older version, not only the
///   previous one. `None` checks nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compat {
    /// New readers read the previous version.
    #[default]
    Backward,
    /// New readers read every older version.
    BackwardTransitive,
    /// Previous readers read the new version.
    Forward,
    /// Every older reader reads the new version.
    ForwardTransitive,
    /// Backward and forward with the previous version.
    Full,
    /// Backward and forward with every older version.
    FullTransitive,
    /// No check.
    None,
}

impl Compat {
    /// Every mode with its name as written in `#[event(compat = "…")]`.
    pub const ALL: [(&'static str, Compat); 7] = [
        ("backward", Compat::Backward),
        ("backward_transitive", Compat::BackwardTransitive),
        ("forward", Compat::Forward),
        ("forward_transitive", Compat::ForwardTransitive),
        ("full", Compat::Full),
        ("full_transitive", Compat::FullTransitive),
        ("none", Compat::None),
    ];

    /// The name as written in `#[event(compat = "…")]`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or("backward")
    }

    /// Whether new readers must read older data.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Compat::Backward | Compat::BackwardTransitive | Compat::Full | Compat::FullTransitive
        )
    }

    /// Whether older readers must read new data.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Compat::Forward | Compat::ForwardTransitive | Compat::Full | Compat::FullTransitive
        )
    }

    /// Whether every older version is checked, not only the previous one.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Compat::BackwardTransitive | Compat::ForwardTransitive | Compat::FullTransitive
        )
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compatibility mode name that is not one of [`Compat::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility mode `{0}`; expected one of backward, backward_transitive, forward, forward_transitive, full, full_transitive, none")]
pub struct UnknownCompat(pub String);

impl FromStr for Compat {
    type Err = UnknownCompat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL
            .iter()
            .find(|(n, _)| *n == norm)
            .map(|(_, c)| *c)
            .ok_or_else(|| UnknownCompat(s.to_owned()))
    }
}
