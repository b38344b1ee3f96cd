#[tidings::event(stream = "guarded", version = 1)]
pub struct BrokenSchema {
    pub a: u8,
}

fn main() {}
