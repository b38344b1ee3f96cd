//! The helpers every reader of a Redis reply here shares: the error for a
//! reply that is not the command's documented one, and the two shapes most
//! replies are made of (strings and arrays).

use redis::Value;

use crate::error::TransportError;

/// A reply to `command` that is not what the command documents.
pub(super) fn protocol(command: &'static str, reason: impl Into<String>) -> TransportError {
    TransportError::Protocol {
        command,
        reason: reason.into(),
    }
}

/// A string reply (bulk, simple or verbatim), which must be UTF-8: ids and
/// names are ASCII, so anything else is a reply gone wrong.
pub(super) fn text(command: &'static str, v: Value) -> Result<String, TransportError> {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b).map_err(|_| protocol(command, "a string is not UTF-8"))
        }
        Value::SimpleString(s) => Ok(s),
        Value::VerbatimString { text, .. } => Ok(text),
        other => Err(protocol(
            command,
            format!("expected a string, got {other:?}"),
        )),
    }
}

/// An array reply (a RESP3 set too).
pub(super) fn items(command: &'static str, v: Value) -> Result<Vec<Value>, TransportError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        other => Err(protocol(
            command,
            format!("expected an array, got {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_of_every_kind_are_read_and_others_are_refused() {
        assert_eq!(
            text("T", Value::BulkString(b"1-0".to_vec())).unwrap(),
            "1-0"
        );
        assert_eq!(text("T", Value::SimpleString("OK".into())).unwrap(), "OK");
        assert!(matches!(
            text("T", Value::BulkString(vec![0xff])),
            Err(TransportError::Protocol { command: "T", .. })
        ));
        assert!(text("T", Value::Int(1)).is_err());
        assert_eq!(items("T", Value::Array(vec![Value::Nil])).unwrap().len(), 1);
        assert!(items("T", Value::Nil).is_err());
    }
}
