use tidings::event;

#[event(channel = "orders", version = 1)]
pub struct OrderChecked {
    pub ok: bool,
}

#[event(channel = "orders", version = 1, reply = OrderChecked)]
pub struct CheckOrder {
    pub order_id: String,
}

fn main() {}
