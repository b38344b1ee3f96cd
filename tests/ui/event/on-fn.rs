#[tidings::event(stream = "contextual", version = 1)]
fn file_uploaded() {}

fn main() {}
