use tidings::{handler, Context, HandlerResult, State};
include!("../support/event.rs");

#[derive(Clone)]
struct Db;

/// Indexes a file.
#[handler(group = "indexer", retries = 5, concurrency = 8)]
pub async fn index(event: FileUploaded, _ctx: Context) -> HandlerResult {
    let _ = event.filename;
    Ok(())
}

#[handler(group = "db")]
async fn store(_event: FileUploaded, _ctx: Context, State(_db): State<Db>) -> HandlerResult {
    Ok(())
}

#[handler(group = "echo", retries = 0)]
async fn echo(event: FileUploaded, _ctx: Context) -> HandlerResult<Option<FileUploaded>> {
    Ok(Some(event))
}

#[derive(Debug)]
struct MyError;
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mine")
    }
}
impl std::error::Error for MyError {}

#[handler(group = "custom-error", crate = "::tidings")]
async fn custom(_event: FileUploaded, _ctx: Context) -> Result<(), MyError> {
    Err(MyError)
}

fn takes<H: tidings::Handler>(_: H) {}

fn main() {
    takes(index);
    takes(store);
    takes(echo);
    takes(custom);
    // Still callable directly, as a unit test would.
    let _future = index(FileUploaded { filename: "a".into() }, Context::detached());
    let _future = store(FileUploaded { filename: "a".into() }, Context::detached(), State(Db));
}
