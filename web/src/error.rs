//! What a bridge answers when it cannot serve a request.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::access::Denied;

/// Why a bridge refused or failed a request; each becomes an HTTP answer
/// with a status and a one-line message (see [`WebError::status`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The authorisation hook turned the request away (401 or 403).
    #[error("{}", .0.message)]
    Denied(Denied),
    /// The request asks for a tenant its grant does not reach (403).
    #[error("this request may not see tenant `{requested}`")]
    OtherTenant {
        /// The tenant asked for (`(root)` for the root scope).
        requested: String,
    },
    /// A name or id in the request breaks the rules of the bus: a tenant,
    /// stream, channel, type pattern or entry id (400).
    #[error("bad request: {0}")]
    BadRequest(tidings_runtime::Error),
    /// A query parameter or header that cannot be read (400).
    #[error("bad request: {what}: {reason}")]
    BadParameter {
        /// The parameter or header.
        what: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// Redis (or the bus) failed while opening the subscription (503).
    #[error("the event source is unavailable: {0}")]
    Unavailable(tidings_runtime::Error),
}

impl WebError {
    /// The HTTP status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Denied(d) => d.status,
            WebError::OtherTenant { .. } => StatusCode::FORBIDDEN,
            WebError::BadRequest(_) | WebError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Sorts an error of the bus: a bad name or id is the client's
    /// mistake, anything else the server's.
    pub(crate) fn from_bus(e: tidings_runtime::Error) -> Self {
        match e {
            tidings_runtime::Error::InvalidName(_)
            | tidings_runtime::Error::InvalidEntryId { .. } => WebError::BadRequest(e),
            other => WebError::Unavailable(other),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::Unavailable(e) = &self {
            tracing::warn!(error = %e, "live view: cannot open the event source");
        }
        (self.status(), self.to_string()).into_response()
    }
}
