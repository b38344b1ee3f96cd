//! Who may see what: the authorisation hook of a bridge, from a request to
//! the tenant and the event types it may see.

use std::fmt;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::StatusCode;

/// What a request may see, as the authorisation hook grants it: one scope
/// of the bus (its root, or one tenant, or any tenant for an operator) and,
/// optionally, only some event types.
///
/// ```
/// use tidings_web::Grant;
/// let g = Grant::tenant("acme").types(["gate.*", "file.uploaded"]);
/// assert!(g.allows_tenant(Some("acme")));
/// assert!(!g.allows_tenant(Some("globex")));
/// assert!(g.allows_type("gate.opened") && !g.allows_type("drift.detected"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Grant {
    /// Which tenants' events.
    pub scope: Scope,
    /// Which event types: every type when `None`; otherwise type names,
    /// each exact (`file.uploaded`) or ending in `*` for every type that
    /// starts with what comes before it (`gate.*`).
    pub types: Option<Vec<String>>,
}

/// The tenants a [`Grant`] reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// The events of the bus's root scope, published on no tenant.
    Root,
    /// The events of one tenant, and nothing else.
    Tenant(String),
    /// The root scope and every tenant: for operators.
    AnyTenant,
}

impl Grant {
    /// The events of the root scope (no tenant), every type.
    pub fn root() -> Self {
        Grant {
            scope: Scope::Root,
            types: None,
        }
    }

    /// The events of one tenant, every type. The name must follow the rule
    /// of [`Bus::tenant`](tidings_runtime::Bus::tenant): a bridge checks it
    /// before it opens anything, and answers 400 when it does not.
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Grant {
            scope: Scope::Tenant(tenant.into()),
            types: None,
        }
    }

    /// The root scope and every tenant, every type: for operators.
    pub fn any_tenant() -> Self {
        Grant {
            scope: Scope::AnyTenant,
            types: None,
        }
    }

    /// Only these event types: each exact, or ending in `*` for a prefix.
    #[must_use]
    pub fn types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Whether a request for `tenant` (`None`: the root scope) is allowed.
    pub fn allows_tenant(&self, tenant: Option<&str>) -> bool {
        match (&self.scope, tenant) {
            (Scope::AnyTenant, _) | (Scope::Root, None) => true,
            (Scope::Tenant(t), Some(asked)) => t == asked,
            _ => false,
        }
    }

    /// The tenant a request that names none gets: the granted tenant, or
    /// the root scope.
    pub fn default_tenant(&self) -> Option<&str> {
        match &self.scope {
            Scope::Tenant(t) => Some(t),
            Scope::Root | Scope::AnyTenant => None,
        }
    }

    /// Whether events of `type_name` may be shown.
    pub fn allows_type(&self, type_name: &str) -> bool {
        match &self.types {
            None => true,
            Some(types) => types.iter().any(|t| match t.strip_suffix('*') {
                Some(prefix) => type_name.starts_with(prefix),
                None => t == type_name,
            }),
        }
    }
}

/// Why the hook turned a request away: a status (401 or 403) and a message
/// for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Denied {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// What the client is told.
    pub message: String,
}

impl Denied {
    /// 401: the request does not say who it is, or says it wrongly.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Denied {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 403: the request is known and may not see this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Denied {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

/// The authorisation hook of a bridge: from the request (method, URI,
/// headers, extensions set by earlier layers) to what it may see.
///
/// Any `Fn(&Parts) -> Result<Grant, Denied>` is one:
///
/// ```
/// use tidings_web::{Denied, Grant};
/// let hook = |req: &axum::http::request::Parts| {
///     match req.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
///         Some(t) => Ok(Grant::tenant(t)),
///         None => Err(Denied::unauthorized("no x-tenant header")),
///     }
/// };
/// let bridge = tidings_web::Bridge::new(tidings_runtime::Bus::in_memory(), hook);
/// ```
pub trait Authorize: Send + Sync + 'static {
    /// What the request may see, or why it may see nothing.
    fn authorize(&self, request: &Parts) -> Result<Grant, Denied>;
}

impl<F> Authorize for F
where
    F: Fn(&Parts) -> Result<Grant, Denied> + Send + Sync + 'static,
{
    fn authorize(&self, request: &Parts) -> Result<Grant, Denied> {
        self(request)
    }
}

/// A shared, type-erased hook.
#[derive(Clone)]
pub(crate) struct Hook(pub(crate) Arc<dyn Authorize>);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook")
    }
}
