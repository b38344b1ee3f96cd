use tidings::{handler, Context};
include!("support/event.rs");

#[handler(group = "g")]
async fn index(_event: FileUploaded, _ctx: Context) -> u32 {
    7
}

fn main() {}
