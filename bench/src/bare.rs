//! The least a client can do for an awaited batch of the benchmark's
//! entries: one thread, a blocking socket, no async runtime, and only the
//! batch's own work.
//!
//! For each batch it serializes every payload first (so that, as with
//! `publish_batch`, an event that cannot be serialized would leave nothing
//! sent), stamps each entry with a fresh ULID, writes the `XADD`s as RESP
//! into one buffer, sends it in one write and reads the replies. Beside
//! `redis-benchmark -c 1 -P 100` (Redis's own client resending one prebuilt
//! buffer), it tells how much of an awaited batch's time is the work every
//! client has to do, whatever it is built on.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::events::FileUploaded;

/// An error of the bare client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The attributes after `id`, as the raw baseline (`raw.rs`) writes them.
const AFTER_ID: [&[u8]; 12] = [
    b"source",
    b"bench",
    b"type",
    b"file.uploaded",
    b"time",
    b"2026-11-24T10:00:00.123Z",
    b"datacontenttype",
    b"application/json",
    b"dataschema",
    b"schemas/bench/file.uploaded/v3.json",
    b"dataversion",
    b"3",
];

/// `$<len>\r\n<bytes>\r\n`.
fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Entries appended per second to `key` by awaited batches of `batch`
/// events, one after another, on one connection to `127.0.0.1:<port>`.
pub fn xadd_batches(
    port: u16,
    key: &str,
    events: &[FileUploaded],
    batch: usize,
) -> Result<f64, BoxError> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_nodelay(true)?;
    let mut payloads = Vec::new();
    let mut ends = Vec::with_capacity(batch);
    let mut out = Vec::new();
    let mut replies = Replies::default();
    let start = Instant::now();
    for chunk in events.chunks(batch.max(1)) {
        payloads.clear();
        ends.clear();
        for e in chunk {
            serde_json::to_writer(&mut payloads, e)?;
            ends.push(payloads.len());
        }
        out.clear();
        let mut from = 0;
        for &end in &ends {
            let mut id = [0u8; ulid::ULID_LEN];
            let id = ulid::Ulid::new().array_to_str(&mut id);
            out.extend_from_slice(b"*21\r\n");
            for arg in [
                &b"XADD"[..],
                key.as_bytes(),
                b"*",
                b"specversion",
                b"1.0",
                b"id",
            ] {
                bulk(&mut out, arg);
            }
            bulk(&mut out, id.as_bytes());
            for arg in AFTER_ID {
                bulk(&mut out, arg);
            }
            bulk(&mut out, b"data");
            bulk(&mut out, &payloads[from..end]);
            from = end;
        }
        socket.write_all(&out)?;
        replies.read(&mut socket, chunk.len())?;
    }
    Ok(events.len() as f64 / start.elapsed().as_secs_f64())
}

/// Reads `XADD` replies off the socket: each a bulk string (the entry id)
/// or an error, which fails the measurement.
#[derive(Default)]
struct Replies {
    buf: Vec<u8>,
}

impl Replies {
    fn read(&mut self, socket: &mut TcpStream, n: usize) -> Result<(), BoxError> {
        let mut pos = 0;
        let mut done = 0;
        let mut chunk = [0u8; 16 * 1024];
        while done < n {
            match next_reply(&self.buf[pos..])? {
                Some(len) => {
                    pos += len;
                    done += 1;
                }
                None => {
                    let got = socket.read(&mut chunk)?;
                    if got == 0 {
                        return Err("the server closed the connection".into());
                    }
                    self.buf.extend_from_slice(&chunk[..got]);
                }
            }
        }
        self.buf.drain(..pos);
        Ok(())
    }
}

/// The length of the whole reply at the start of `buf`, `None` if it has
/// not all arrived.
fn next_reply(buf: &[u8]) -> Result<Option<usize>, BoxError> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    match buf.first() {
        Some(b'$') => {
            let len: usize = std::str::from_utf8(&buf[1..eol])?.parse()?;
            let end = eol + 2 + len + 2;
            Ok((buf.len() >= end).then_some(end))
        }
        _ => Err(format!(
            "unexpected reply to XADD: {}",
            String::from_utf8_lossy(&buf[..eol])
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_whole_only_when_all_of_it_has_arrived() {
        let reply = b"$15\r\n1732442400000-7\r\n";
        assert_eq!(next_reply(reply).unwrap(), Some(reply.len()));
        for cut in 0..reply.len() {
            assert_eq!(next_reply(&reply[..cut]).unwrap(), None, "cut at {cut}");
        }
        let two = b"$3\r\n1-0\r\n$3\r\n1-1\r\n";
        assert_eq!(next_reply(two).unwrap(), Some(9));
    }

    #[test]
    fn an_error_or_another_reply_fails_the_measurement() {
        let err = next_reply(b"-WRONGTYPE Operation against a key\r\n").unwrap_err();
        assert!(err.to_string().contains("WRONGTYPE"), "{err}");
        assert!(next_reply(b":1\r\n").is_err());
        assert!(next_reply(b"$x\r\n").is_err());
    }
}
