//! A connection that only sends `XREADGROUP` and parses its reply by hand.
//!
//! redis-rs parses replies with a generic combinator parser that costs about
//! 1,600 instructions per bulk string (callgrind), and an entry of the wire
//! format is 19 bulk strings: more than half of a consumer's CPU went there.
//! This parser walks the bytes once to see that the reply is complete, then
//! once more to move each bulk string into a [`Value`], for well under a
//! tenth of that. The reply is then read by the same code as a redis-rs one.
//!
//! Only plain TCP is spoken here (RESP2, with `AUTH` and `SELECT` when the
//! client has them); any other address falls back to redis-rs.

use redis::{ConnectionAddr, ConnectionInfo, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::transport::TransportError;

/// Nesting deeper than any reply of the commands sent here.
const MAX_DEPTH: usize = 8;
/// Read size: a reply of 100 entries of the wire format is about 60 KiB.
const READ_CHUNK: usize = 128 * 1024;

fn protocol(command: &'static str, reason: impl Into<String>) -> TransportError {
    TransportError::Protocol {
        command,
        reason: reason.into(),
    }
}

/// One plain TCP connection, opened on first use and dropped on any error
/// (the next command opens a new one).
pub(super) struct RespConnection {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    conn: Option<(TcpStream, Vec<u8>)>,
}

impl RespConnection {
    /// A connection for `info`, if it is plain TCP.
    pub(super) fn for_info(info: &ConnectionInfo) -> Option<Self> {
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        Some(RespConnection {
            host: host.clone(),
            port: *port,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            db: settings.db(),
            conn: None,
        })
    }

    async fn open(&self) -> Result<(TcpStream, Vec<u8>), TransportError> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(redis::RedisError::from)?;
        let _ = stream.set_nodelay(true);
        let mut buf = Vec::with_capacity(READ_CHUNK);
        if let Some(password) = &self.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &self.username {
                auth.arg(user);
            }
            auth.arg(password);
            expect_ok(&mut stream, &mut buf, &auth, "AUTH").await?;
        }
        if self.db != 0 {
            let mut select = redis::cmd("SELECT");
            select.arg(self.db);
            expect_ok(&mut stream, &mut buf, &select, "SELECT").await?;
        }
        Ok((stream, buf))
    }

    /// Sends `cmd` and returns its reply; a server error is an `Err`.
    pub(super) async fn query(
        &mut self,
        cmd: &redis::Cmd,
        command: &'static str,
    ) -> Result<Value, TransportError> {
        let (stream, buf) = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.open().await?),
        };
        let result = roundtrip(stream, buf, cmd, command).await;
        if let Err(e) = &result {
            if !matches!(e, TransportError::Protocol { reason, .. } if is_server_error(reason)) {
                // The stream may be anywhere in a reply: start afresh.
                self.conn = None;
            }
        }
        result
    }
}

/// Server errors are reported as `Protocol` errors whose reason is the
/// error line (`NOGROUP …`), which leave the connection usable.
fn is_server_error(reason: &str) -> bool {
    reason.starts_with(|c: char| c.is_ascii_uppercase())
        && !reason.starts_with("RESP")
        && !reason.starts_with("CONNECTION")
}

async fn expect_ok(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    cmd: &redis::Cmd,
    command: &'static str,
) -> Result<(), TransportError> {
    roundtrip(stream, buf, cmd, command).await.map(|_| ())
}

async fn roundtrip(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    cmd: &redis::Cmd,
    command: &'static str,
) -> Result<Value, TransportError> {
    stream
        .write_all(&cmd.get_packed_command())
        .await
        .map_err(redis::RedisError::from)?;
    loop {
        if let Some(len) = complete(buf, 0, 0).map_err(|r| protocol(command, r))? {
            let result = if buf[0] == b'-' {
                let text = String::from_utf8_lossy(&buf[1..len - 2]).into_owned();
                Err(protocol(command, text))
            } else {
                let mut pos = 0;
                Ok(parse(&buf[..len], &mut pos))
            };
            buf.drain(..len);
            return result;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 2 {
            buf.reserve(READ_CHUNK);
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(redis::RedisError::from)?;
        if n == 0 {
            return Err(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::UnexpectedEof,
            ))
            .into());
        }
    }
}

/// The line at `at` (without its CRLF) and where the next item starts.
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn integer(digits: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("RESP: bad length {:?}", String::from_utf8_lossy(digits)))
}

/// The length of the complete reply starting at `at`, `None` if more bytes
/// are needed; checks every header, so that [`parse`] cannot fail.
fn complete(buf: &[u8], at: usize, depth: usize) -> Result<Option<usize>, String> {
    if depth > MAX_DEPTH {
        return Err("RESP: reply nested too deep".to_owned());
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((head, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    match kind {
        b'-' if depth > 0 => Err("RESP: error inside a reply".to_owned()),
        b'+' | b'-' | b':' => {
            if kind == b':' {
                integer(head)?;
            }
            Ok(Some(next))
        }
        b'$' => {
            let n = integer(head)?;
            if n < 0 {
                return Ok(Some(next));
            }
            let end = next + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err("RESP: bulk string without CRLF".to_owned());
            }
            Ok(Some(end))
        }
        b'*' => {
            let n = integer(head)?;
            let mut pos = next;
            for _ in 0..n.max(0) {
                match complete(buf, pos, depth + 1)? {
                    Some(p) => pos = p,
                    None => return Ok(None),
                }
            }
            Ok(Some(pos))
        }
        other => Err(format!("RESP: unexpected type byte {other:#04x}")),
    }
}

/// The reply at `*pos`, which [`complete`] checked.
fn parse(buf: &[u8], pos: &mut usize) -> Value {
    let kind = buf[*pos];
    let (head, next) = line(buf, *pos + 1).unwrap_or((&[], buf.len()));
    *pos = next;
    let n = || integer(head).unwrap_or(-1);
    match kind {
        b'+' if head == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(head).into_owned()),
        b':' => Value::Int(n()),
        b'$' => {
            let len = n();
            if len < 0 {
                return Value::Nil;
            }
            let len = len as usize;
            let v = buf[next..next + len].to_vec();
            *pos = next + len + 2;
            Value::BulkString(v)
        }
        _ => {
            let len = n();
            if len < 0 {
                return Value::Nil;
            }
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                items.push(parse(buf, pos));
            }
            Value::Array(items)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Value {
        assert_eq!(complete(bytes, 0, 0).unwrap(), Some(bytes.len()));
        let mut pos = 0;
        let v = parse(bytes, &mut pos);
        assert_eq!(pos, bytes.len());
        v
    }

    #[test]
    fn parses_the_same_values_as_redis_rs() {
        let reply = b"*1\r\n*2\r\n$3\r\nkey\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$4\r\ntype\r\n$1\r\nx\r\n$4\r\ndata\r\n$0\r\n\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n";
        assert_eq!(whole(reply), redis::parse_redis_value(reply).unwrap());
        for r in [
            &b"*-1\r\n"[..],
            b"$-1\r\n",
            b":42\r\n",
            b"+OK\r\n",
            b"*0\r\n",
        ] {
            assert_eq!(whole(r), redis::parse_redis_value(r).unwrap());
        }
    }

    #[test]
    fn an_incomplete_reply_asks_for_more_at_every_cut() {
        let reply = b"*2\r\n$5\r\nhello\r\n*1\r\n:7\r\n";
        for cut in 0..reply.len() {
            assert_eq!(complete(&reply[..cut], 0, 0).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(complete(reply, 0, 0).unwrap(), Some(reply.len()));
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(complete(b"!3\r\nabc\r\n", 0, 0).is_err());
        assert!(complete(b"$x\r\n", 0, 0).is_err());
        assert!(complete(b"$3\r\nabcde\r\n", 0, 0).is_err());
        assert!(complete(b"*1\r\n-ERR x\r\n", 0, 0).is_err());
    }
}
