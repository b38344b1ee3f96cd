use tidings::{handler, Context, HandlerResult};

#[handler(group = "billing:{eu}")]
async fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

#[handler(group = "file processor")]
async fn spaced(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

#[handler(group = "")]
async fn empty(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
