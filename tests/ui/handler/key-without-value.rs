use tidings::{handler, Context, HandlerResult};

#[handler(group, retries = 1)]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
