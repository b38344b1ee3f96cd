//! A handler with its event type erased, so that one worker runs handlers
//! of many event types.

use super::{BoxFuture, Context, Handler, HandlerError, HandlerOptions, Outcome, StateType};
use crate::envelope::Envelope;
use crate::error::DecodeError;
use crate::Event;

/// A handler with its event type erased, so that one worker runs many.
pub(crate) trait ErasedHandler: Send + Sync {
    fn name(&self) -> &'static str;
    fn type_name(&self) -> &'static str;
    fn stream(&self) -> Option<&'static str>;
    fn options(&self) -> HandlerOptions;
    fn states(&self) -> Vec<StateType>;
    fn dispatch(
        &self,
        envelope: &Envelope,
        ctx: Context,
    ) -> Result<BoxFuture<'static, Result<Outcome, HandlerError>>, DecodeError>;
}

pub(crate) struct Erase<H>(pub(crate) H);

impl<H: Handler> ErasedHandler for Erase<H>
where
    H::Event: Event,
{
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn type_name(&self) -> &'static str {
        <H::Event as Event>::TYPE
    }
    fn stream(&self) -> Option<&'static str> {
        <H::Event as Event>::STREAM
    }
    fn options(&self) -> HandlerOptions {
        self.0.options()
    }
    fn states(&self) -> Vec<StateType> {
        self.0.states()
    }
    fn dispatch(
        &self,
        envelope: &Envelope,
        ctx: Context,
    ) -> Result<BoxFuture<'static, Result<Outcome, HandlerError>>, DecodeError> {
        let event = H::Event::decode(envelope.dataversion, &envelope.data)?;
        Ok(self.0.call(event, ctx))
    }
}
