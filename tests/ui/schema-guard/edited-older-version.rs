// v1 and v2 are committed: a change to v1 is published as v3, the first
// version that does not exist yet, not as v2.
#[tidings::event(stream = "guarded", version = 1)]
pub struct OrderPlacedV1 {
    pub order_id: String,
    pub customer: String,
}

fn main() {}
