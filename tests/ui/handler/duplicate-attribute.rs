use tidings::{handler, Context, HandlerResult};

#[handler(group = "a", retries = 2, group = "b")]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
