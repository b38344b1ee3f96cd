use tidings::{handler, Context, HandlerResult};

#[handler(group = "g", retries = "0", concurrency = 0)]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

#[handler(group = "g", retries = -1, concurrency = 2.5)]
async fn other(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
