use tidings::{handler, HandlerResult};
include!("support/event.rs");

#[handler(group = "g")]
async fn index(_event: FileUploaded, _ctx: u32) -> HandlerResult {
    Ok(())
}

fn main() {}
