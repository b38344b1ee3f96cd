// A handler's name is a function's: a `let`, a parameter or a closure
// argument of that name is a new variable that shadows it, as for any
// function, and never a pattern that must match the handler.
use tidings::{handler, Bus, Context, HandlerResult, State};
include!("../support/event.rs");

#[derive(Clone)]
struct Db;

#[handler(group = "thumbnailer")]
async fn thumbnail(event: FileUploaded, _ctx: Context) -> HandlerResult {
    let _ = event.filename;
    Ok(())
}

#[handler(group = "db")]
async fn store(_event: FileUploaded, _ctx: Context, State(_db): State<Db>) -> HandlerResult {
    Ok(())
}

fn thumbnail_path(dir: &str) -> String {
    let thumbnail = "t.png";
    format!("{dir}/{thumbnail}")
}

fn sizes(thumbnail: &str, store: usize) -> usize {
    thumbnail.len() + store
}

mod elsewhere {
    use super::thumbnail;

    pub(crate) fn shadow() -> usize {
        let thumbnail = [1, 2, 3];
        thumbnail.len()
    }

    pub(crate) fn register(bus: &tidings::Bus) -> tidings::ConsumerBuilder {
        bus.consumer().handler(thumbnail)
    }
}

fn main() {
    assert_eq!(thumbnail_path("a"), "a/t.png");
    assert_eq!(sizes("t.png", 2), 7);
    assert_eq!(elsewhere::shadow(), 3);
    assert_eq!(["x.png"].map(|thumbnail| thumbnail.len()), [5]);
    match "t.png" {
        thumbnail => assert_eq!(thumbnail, "t.png"),
    }

    // The names still register the handlers and call them directly.
    let bus = Bus::in_memory();
    let _worker = elsewhere::register(&bus).handler(store).state(Db);
    let _future = thumbnail(FileUploaded { filename: "a".into() }, Context::detached());
    let _future = store(FileUploaded { filename: "a".into() }, Context::detached(), State(Db));
}
