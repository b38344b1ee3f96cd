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

// A parameter named like the handler, attributes kept on the function, and a
// `#[cfg]` after `#[handler]` (one before it removes the function before the
// macro sees it) that removes everything the macro made.
/// Handles an event named `event`.
#[handler(group = "named")]
#[allow(clippy::unused_async)]
async fn event(event: FileUploaded, _ctx: Context) -> HandlerResult {
    let _ = event.filename;
    Ok(())
}

#[handler(group = "gone")]
#[cfg(any())]
async fn gone(_event: FileUploaded, _ctx: Context) -> HandlerResult {
    Ok(())
}

fn takes<H: tidings::IntoHandler<A>, A>(_: H) {}

// A handler's call is a future in its own right, for `tokio::spawn` and
// `join_all`.
fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}

fn main() {
    takes(index);
    takes(store);
    takes(echo);
    takes(custom);
    takes(event);
    spawnable(event(FileUploaded { filename: "a".into() }, Context::detached()));
    // Still callable directly, as a unit test would.
    let _future = index(FileUploaded { filename: "a".into() }, Context::detached());
    let _future = store(FileUploaded { filename: "a".into() }, Context::detached(), State(Db));
}
