use tidings::{handler, Context, HandlerResult};
include!("support/event.rs");

#[derive(Clone)]
struct Db;

#[handler(group = "g")]
async fn store(_event: FileUploaded, _ctx: Context, _db: Db) -> HandlerResult {
    Ok(())
}

fn main() {}
