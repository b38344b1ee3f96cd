use tidings::{handler, Context};

#[handler(group = "g")]
async fn index(_event: String, _ctx: Context) {}

fn main() {}
