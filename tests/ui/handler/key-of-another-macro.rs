use tidings::{handler, Context, HandlerResult};

#[handler(group = "g", stream = "contextual")]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
