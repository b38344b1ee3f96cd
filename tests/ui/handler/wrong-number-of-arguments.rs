use tidings::{handler, Context, HandlerResult};

#[handler(group = "g")]
async fn too_few(_event: String) -> HandlerResult {
    Ok(())
}

#[handler(group = "g")]
async fn too_many(_event: String, _ctx: Context, _a: u8, _b: u8) -> HandlerResult {
    Ok(())
}

fn main() {}
