use std::rc::Rc;

use tidings::{handler, Context, HandlerResult};
include!("support/event.rs");

async fn save(_name: &str) {}

#[handler(group = "g")]
async fn index(event: FileUploaded, _ctx: Context) -> HandlerResult {
    let name = Rc::new(event.filename);
    save(&name).await;
    Ok(())
}

fn main() {}
