use tidings::{handler, Context};

#[handler(steam = "x", retries = 0)]
fn index<T>(_event: T) {}

fn main() {}
