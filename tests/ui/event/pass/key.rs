use tidings::{Event, Ulid};

#[tidings::event(stream = "contextual", version = 1, key = file_id)]
pub struct FileUploaded {
    pub file_id: String,
}

#[tidings::event(stream = "orders", version = 1, key = order)]
pub struct OrderPlaced {
    pub order: u64,
}

#[tidings::event(stream = "orders", version = 1, key = id)]
pub struct OrderShipped {
    pub id: Ulid,
}

#[tidings::event(stream = "orders", version = 1, key = customer)]
pub struct OrderNoted {
    pub customer: Option<String>,
}

fn main() {
    let f = FileUploaded { file_id: "f-1".into() };
    assert_eq!(f.partition_key().as_deref(), Some("f-1"));
    assert_eq!(OrderPlaced { order: 42 }.partition_key().as_deref(), Some("42"));
    let id = Ulid::new();
    assert_eq!(OrderShipped { id }.partition_key(), Some(id.to_string()));
    assert_eq!(OrderNoted { customer: None }.partition_key(), None);
}
