use tidings::{handler, Context, HandlerResult};

#[handler(group = "g")]
fn index(_event: String, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
