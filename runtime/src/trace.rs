//! Spans of publishing and handling, and the W3C trace context they carry
//! on the wire (`traceparent`, `tracestate`).
//!
//! Every publish runs in a `tidings.publish` span (`otel.kind = producer`)
//! and every handler run in a `tidings.process` span (`otel.kind =
//! consumer`), with the OpenTelemetry messaging attributes as fields. With
//! the `opentelemetry` feature, and `tracing-opentelemetry` as a layer of
//! the subscriber, the publish span's context is written as the event's
//! `traceparent` and `tracestate`, and the process span of whoever handles
//! it continues that trace, across Redis and across languages.

use tracing::Span;

/// `traceparent` and `tracestate` to write on an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WireContext {
    pub(crate) traceparent: Option<String>,
    pub(crate) tracestate: Option<String>,
}

/// The span of one publish call.
pub(crate) fn publish_span(
    system: &'static str,
    destination: &'static str,
    type_name: &'static str,
    operation: &'static str,
) -> Span {
    tracing::info_span!(
        "tidings.publish",
        otel.name = %format_args!("{operation} {destination}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.destination.name = destination,
        messaging.operation.name = operation,
        messaging.message.id = tracing::field::Empty,
        cloudevents.event_type = type_name,
    )
}

/// Makes the publish span a child of the `traceparent` a caller gave in its
/// `Meta` (one it received over HTTP, say), when no span of its own
/// encloses the publish: the caller's trace goes on through the event.
pub(crate) fn adopt(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if traceparent.is_some() && !span.is_disabled() && Span::current().is_none() {
        continue_trace(span, traceparent, tracestate);
    }
}

/// The span of one handler run on one delivered event, continuing the trace
/// its `traceparent` names (with the `opentelemetry` feature).
pub(crate) fn process_span(
    system: &'static str,
    destination: &'static str,
    group: &'static str,
    handler: &'static str,
    envelope: &crate::envelope::Envelope,
) -> Span {
    let span = tracing::info_span!(
        "tidings.process",
        otel.name = %format_args!("process {destination}"),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.destination.name = destination,
        messaging.consumer.group.name = group,
        messaging.operation.name = "process",
        // As `&str`, not `%`: a `Display` field goes through the
        // formatting machinery in every layer that records it.
        messaging.message.id = envelope.id.as_str(),
        cloudevents.event_type = envelope.type_name.as_str(),
        tidings.handler = handler,
    );
    if !span.is_disabled() {
        continue_trace(
            &span,
            envelope.traceparent.as_deref(),
            envelope.tracestate.as_deref(),
        );
    }
    span
}

/// The context to write on the events `span` publishes: its own, when it
/// belongs to a trace.
#[cfg(feature = "opentelemetry")]
pub(crate) fn wire_context(span: &Span) -> Option<WireContext> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    let traceparent = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    let state = sc.trace_state().header();
    Some(WireContext {
        traceparent: Some(traceparent),
        tracestate: (!state.is_empty()).then_some(state),
    })
}

/// Without the `opentelemetry` feature, spans carry no trace ids: the
/// event keeps the `traceparent` its `Meta` gives.
#[cfg(not(feature = "opentelemetry"))]
#[inline]
pub(crate) fn wire_context(_span: &Span) -> Option<WireContext> {
    None
}

/// Makes `span` a child of the remote span `traceparent` names, if it is a
/// valid W3C traceparent (anything else is ignored: a producer's bad
/// header starts a new trace, it never fails the delivery).
#[cfg(feature = "opentelemetry")]
fn continue_trace(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Some(parent) = traceparent.and_then(parse_traceparent) else {
        return;
    };
    let (trace_id, span_id, flags) = parent;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let sc = SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::new(flags),
        true,
        state,
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
}

#[cfg(not(feature = "opentelemetry"))]
#[inline]
fn continue_trace(_span: &Span, _traceparent: Option<&str>, _tracestate: Option<&str>) {}

/// The trace id, parent span id and flags of a W3C `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex>`); `None` for anything else, and for
/// the all-zero ids the standard calls invalid.
#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
pub(crate) fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8], u8)> {
    let mut parts = s.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let hex = |s: &str, out: &mut [u8]| -> Option<()> {
        if s.len() != out.len() * 2
            || !s
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(())
    };
    let (mut t, mut p, mut f) = ([0u8; 16], [0u8; 8], [0u8; 1]);
    hex(trace, &mut t)?;
    hex(span, &mut p)?;
    hex(flags, &mut f)?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    Some((t, p, f[0]))
}

#[cfg(test)]
mod tests {
    use super::parse_traceparent;

    #[test]
    fn traceparents_are_read_as_w3c_writes_them() {
        let (t, p, f) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t[0], 0x4b);
        assert_eq!(p[7], 0xb7);
        assert_eq!(f, 1);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // A later version may add fields after the four.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
                .is_some()
        );
    }
}
