use tidings::event;

pub struct NotAnEvent {
    pub ok: bool,
}

#[event(stream = "orders", version = 1, reply = NotAnEvent)]
pub struct CheckOrder {
    pub order_id: String,
}

fn main() {}
