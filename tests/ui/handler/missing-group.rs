use tidings::{handler, Context, HandlerResult};

#[handler(retries = 3)]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

#[handler]
async fn bare(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
