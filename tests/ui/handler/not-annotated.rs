use tidings::{Bus, Context, HandlerResult};
include!("support/event.rs");

// Without `#[handler]` a function has no group: the consumer refuses it.
async fn index(_event: FileUploaded, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {
    let _ = Bus::in_memory().consumer().handler(index);
}
