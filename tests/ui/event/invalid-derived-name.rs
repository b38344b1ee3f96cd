#[tidings::event(stream = "contextual", version = 1)]
pub struct Téléversé {
    pub filename: String,
}

fn main() {}
