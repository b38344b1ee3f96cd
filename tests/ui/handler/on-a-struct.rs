// The struct is kept next to the error, so its use below adds none.
use tidings::handler;

#[handler(group = "g")]
pub struct Index;

fn main() {
    let _ = Index;
}
