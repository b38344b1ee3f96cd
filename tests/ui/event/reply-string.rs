use tidings::event;

#[event(stream = "orders", version = 1)]
pub struct OrderChecked {
    pub ok: bool,
}

#[event(stream = "orders", version = 1, reply = "OrderChecked")]
pub struct CheckOrder {
    pub order_id: String,
}

fn main() {}
