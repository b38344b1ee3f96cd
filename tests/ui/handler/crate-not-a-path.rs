use tidings::{handler, Context, HandlerResult};

#[handler(group = "g", crate = "not a path")]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

#[handler(group = "g", crate = tidings)]
async fn other(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
