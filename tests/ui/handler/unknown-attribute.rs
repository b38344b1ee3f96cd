use tidings::{handler, Context, HandlerResult};

#[handler(grop = "g", group = "g", priority = 1)]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
