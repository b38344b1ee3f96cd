use tidings::{event, Bus};

#[event(stream = "orders", version = 1)]
pub struct CheckOrder {
    pub order_id: String,
}

async fn ask(bus: Bus) {
    let _ = bus.request(&CheckOrder { order_id: "o-1".into() }).await;
}

fn main() {
    let _ = ask;
}
