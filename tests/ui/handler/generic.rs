use tidings::{handler, Context, HandlerResult};

#[handler(group = "g")]
async fn index<E>(_event: E, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn main() {}
