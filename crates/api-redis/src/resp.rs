//! RESP parsing: the server-side request decoder (multibulk and inline
//! commands, with Redis 7.0's exact protocol error texts) and a general
//! RESP2/RESP3 frame parser (for replies, tests and proxies), both bounded
//! by [`Limits`].
//!
//! The request decoder mirrors `processMultibulkBuffer` /
//! `processInlineBuffer` in Redis's `networking.c`: it is incremental (a
//! partially received command keeps the arguments already complete, so a
//! slowly arriving command is never rescanned from the start), never
//! allocates based on a length the peer merely *declared*, and reports
//! the same error strings, which the Redis test suite matches on.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::frame::Frame;
use crate::parse::parse_i64_strict;

/// Size limits applied to everything a peer sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string accepted (Redis `proto-max-bulk-len`, 512 MiB).
    pub max_bulk_len: usize,
    /// Largest argument count of one command. Redis allows up to
    /// `INT_MAX`; we default to 1 Mi so a single request can never make us
    /// hold millions of argument handles.
    pub max_multibulk_len: usize,
    /// Largest inline command line, and largest length/count line
    /// (`PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_inline_len: usize,
    /// Deepest aggregate nesting the general frame parser accepts.
    pub max_depth: usize,
    /// Largest amount of received-but-unexecuted input per client (Redis
    /// `client-query-buffer-limit`, 1 GiB).
    pub max_query_buffer: usize,
    /// Largest amount of encoded-but-unsent output per client; a client
    /// whose pending replies exceed this is disconnected.
    pub max_output_buffer: usize,
}

/// Default maximum bulk length: 512 MiB, as Redis.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Default maximum inline request size: 64 KiB, as Redis.
pub const DEFAULT_MAX_INLINE_LEN: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: DEFAULT_MAX_INLINE_LEN,
            max_depth: 128,
            max_query_buffer: 1024 * 1024 * 1024,
            max_output_buffer: 256 * 1024 * 1024,
        }
    }
}

/// A request the client sent that Redis would reject with a protocol error.
/// Redis replies with the error and then closes the connection; so do we.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// An inline line (or the garbage before any newline) is too long.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// Inline quoting was not closed, or a closing quote was glued to text.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// No CR within `max_inline_len` bytes of a `*` header.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    /// `*` count is not an integer or is above the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// More than 10 arguments before authentication.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// No CR within `max_inline_len` bytes of a `$` header.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An argument does not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// `$` length is not an integer, is negative or above the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A bulk argument above 16 KiB before authentication.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The error reply Redis sends before closing (`-ERR Protocol error: ...`).
    pub fn to_frame(&self) -> Frame {
        Frame::error(self.to_string())
    }
}

/// Incremental decoder of client requests (`*N\r\n$len\r\n...` or inline).
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    /// Redis caps argument counts and sizes before `AUTH` succeeds when a
    /// password is set; the connection keeps this flag current.
    auth_required: bool,
    state: State,
}

#[derive(Debug, Default)]
enum State {
    /// Between commands.
    #[default]
    Idle,
    /// Inside a multibulk command.
    Multibulk {
        /// Arguments still to come.
        remaining: usize,
        /// Length of the next argument, once its `$` header is read.
        bulk_len: Option<usize>,
        /// Arguments complete so far.
        args: Vec<Bytes>,
        /// Sum of their lengths (counts toward the query-buffer limit).
        args_bytes: usize,
    },
}

/// Never pre-allocate more argument slots than this on the word of the
/// peer (Redis does the same: `min(multibulklen, 1024)`).
const ARGV_PREALLOC: usize = 1024;

/// Redis's inline-protocol reply to an unauthenticated huge `*` count
/// kicks in above this many arguments.
const UNAUTH_MAX_ARGS: i64 = 10;
/// ...and above this bulk size.
const UNAUTH_MAX_BULK: i64 = 16384;

impl RequestDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            auth_required: false,
            state: State::Idle,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the client still has to authenticate (enables Redis's tighter
    /// pre-auth size checks).
    pub fn set_auth_required(&mut self, required: bool) {
        self.auth_required = required;
    }

    /// Bytes held by a partially decoded command (not counting `buf`).
    pub fn pending_bytes(&self) -> usize {
        match &self.state {
            State::Idle => 0,
            State::Multibulk {
                args_bytes, args, ..
            } => args_bytes.saturating_add(args.len().saturating_mul(std::mem::size_of::<Bytes>())),
        }
    }

    /// True while a command has been started but not completed.
    pub fn in_progress(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Decodes the next command from `buf`, consuming its bytes.
    ///
    /// Returns `Ok(None)` when more input is needed. Empty commands (an
    /// empty inline line, `*0`, `*-1`) are skipped as Redis does. After an
    /// error the connection must be closed: the decoder's state is then
    /// unspecified.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if matches!(self.state, State::Idle) {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf[0] != b'*' {
                    match self.decode_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
                match self.decode_multibulk_header(buf)? {
                    None => return Ok(None),
                    Some(0) => continue,
                    Some(n) => {
                        self.state = State::Multibulk {
                            remaining: n,
                            bulk_len: None,
                            args: Vec::with_capacity(n.min(ARGV_PREALLOC)),
                            args_bytes: 0,
                        };
                    }
                }
            }
            return self.decode_multibulk_args(buf);
        }
    }

    fn decode_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(nl) = memchr::memchr(b'\n', buf) else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        // Redis only checks the size while no newline has arrived (it reads
        // 16 KiB at a time, so that check trips first); checking the line
        // itself too makes the limit independent of read sizes.
        let line_len = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        if line_len > self.limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        let args = split_inline_args(&buf[..line_len]).ok_or(ProtocolError::UnbalancedQuotes)?;
        buf.advance(nl + 1);
        Ok(Some(args.into_iter().map(Bytes::from).collect()))
    }

    /// Reads `*N\r\n`. Returns the count (0 for empty/negative counts).
    fn decode_multibulk_header(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<usize>, ProtocolError> {
        let Some(cr) = memchr::memchr(b'\r', buf) else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigMbulkCount);
            }
            return Ok(None);
        };
        if cr + 2 > buf.len() {
            // The LF has not arrived yet.
            return Ok(None);
        }
        let n = parse_i64_strict(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if n > i64::from(i32::MAX) || (n > 0 && n as u64 > self.limits.max_multibulk_len as u64) {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        if n > UNAUTH_MAX_ARGS && self.auth_required {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        // Like Redis, the byte after CR is assumed to be LF and not checked.
        buf.advance(cr + 2);
        Ok(Some(usize::try_from(n.max(0)).unwrap_or(0)))
    }

    fn decode_multibulk_args(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let State::Multibulk {
            remaining,
            bulk_len,
            args,
            args_bytes,
        } = &mut self.state
        else {
            return Ok(None);
        };
        while *remaining > 0 {
            let len = match *bulk_len {
                Some(len) => len,
                None => {
                    let Some(cr) = memchr::memchr(b'\r', buf) else {
                        if buf.len() > self.limits.max_inline_len {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        return Ok(None);
                    };
                    if cr + 2 > buf.len() {
                        return Ok(None);
                    }
                    if buf[0] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(buf[0]));
                    }
                    let n =
                        parse_i64_strict(&buf[1..cr]).ok_or(ProtocolError::InvalidBulkLength)?;
                    if n < 0 || n as u64 > self.limits.max_bulk_len as u64 {
                        return Err(ProtocolError::InvalidBulkLength);
                    }
                    if n > UNAUTH_MAX_BULK && self.auth_required {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    buf.advance(cr + 2);
                    let len = usize::try_from(n).map_err(|_| ProtocolError::InvalidBulkLength)?;
                    *bulk_len = Some(len);
                    len
                }
            };
            // The cheap completeness check: nothing is copied or allocated
            // until the whole argument (and its CRLF) is buffered.
            let needed = len.saturating_add(2);
            if buf.len() < needed {
                // Help a large argument land in one allocation, but never
                // reserve more than a bounded step on the peer's say-so.
                let want = needed - buf.len();
                buf.reserve(want.min(1024 * 1024));
                return Ok(None);
            }
            let arg = buf.split_to(len).freeze();
            // Like Redis, the two bytes after the payload are skipped
            // without being checked.
            buf.advance(2);
            *args_bytes = args_bytes.saturating_add(len);
            args.push(arg);
            *bulk_len = None;
            *remaining -= 1;
        }
        let State::Multibulk { args, .. } = std::mem::take(&mut self.state) else {
            return Ok(None);
        };
        Ok(Some(args))
    }
}

/// Splits an inline command line with Redis's `sdssplitargs` rules:
/// blanks separate arguments; `"..."` supports `\n \r \t \b \a \xHH` and
/// `\<any>` escapes; `'...'` supports only `\'`; a closing quote must be
/// followed by a blank or the end. Returns `None` on unbalanced quotes.
///
/// Redis runs this on a C string, so a NUL byte ends the line; we do the
/// same so that inline parsing of binary junk matches.
pub fn split_inline_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let end = memchr::memchr(0, line).unwrap_or(line.len());
    let line = &line[..end];
    // `*(p+k)` in the C code reads the NUL terminator past the end.
    let at = |i: usize| -> u8 { line.get(i).copied().unwrap_or(0) };
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut args = Vec::new();
    let mut p = 0usize;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq, mut done) = (false, false, false);
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && at(p + 2).is_ascii_hexdigit()
                    && at(p + 3).is_ascii_hexdigit()
                {
                    cur.push(hex_val(at(p + 2)) * 16 + hex_val(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    cur.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    other => cur.push(other),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(cur);
    }
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Errors of the general frame parser.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// A type byte RESP does not define (or that we do not support, such as
    /// attributes and streamed strings).
    #[error("Protocol error: invalid frame type byte '{}'", char::from(*.0))]
    InvalidType(u8),
    /// A length or count is malformed, negative (other than -1) or too big.
    #[error("Protocol error: invalid length")]
    InvalidLength,
    /// An integer is malformed.
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    /// A double is malformed.
    #[error("Protocol error: invalid double")]
    InvalidDouble,
    /// A value has the wrong shape (bad boolean, non-empty null, bad verbatim
    /// header, bad big number, missing CRLF after a payload).
    #[error("Protocol error: malformed frame")]
    Malformed,
    /// A line is longer than `max_inline_len`.
    #[error("Protocol error: line too long")]
    LineTooLong,
    /// Aggregates are nested deeper than `max_depth`.
    #[error("Protocol error: nesting too deep")]
    TooDeep,
}

/// Returns the byte length of the first complete frame in `buf`, `None` if
/// it is not all there yet. Allocates nothing; callers run this before
/// [`parse_frame`] so partial input costs no allocation.
pub fn check_frame(buf: &[u8], limits: &Limits) -> Result<Option<usize>, FrameError> {
    let mut pos = 0;
    match scan(buf, &mut pos, limits, 0, &mut None)? {
        true => Ok(Some(pos)),
        false => Ok(None),
    }
}

/// Parses the first frame of `buf`; returns it with its byte length, or
/// `None` if incomplete.
pub fn parse_frame(buf: &[u8], limits: &Limits) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(len) = check_frame(buf, limits)? else {
        return Ok(None);
    };
    let mut pos = 0;
    let mut out = Some(Vec::with_capacity(1));
    // The check above validated the frame, so this pass only builds it.
    scan(&buf[..len], &mut pos, limits, 0, &mut out)?;
    let frame = out.and_then(|mut v| v.pop()).ok_or(FrameError::Malformed)?;
    Ok(Some((frame, len)))
}

/// Reads one line (without CRLF) starting at `*pos`. `Ok(None)` if no CRLF
/// yet.
fn read_line<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    limits: &Limits,
) -> Result<Option<&'a [u8]>, FrameError> {
    let rest = &buf[*pos..];
    let Some(cr) = memchr::memchr(b'\r', rest) else {
        if rest.len() > limits.max_inline_len {
            return Err(FrameError::LineTooLong);
        }
        return Ok(None);
    };
    if cr > limits.max_inline_len {
        return Err(FrameError::LineTooLong);
    }
    if cr + 1 >= rest.len() {
        return Ok(None);
    }
    if rest[cr + 1] != b'\n' {
        return Err(FrameError::Malformed);
    }
    *pos += cr + 2;
    Ok(Some(&rest[..cr]))
}

fn read_len(line: &[u8], max: usize, allow_null: bool) -> Result<Option<usize>, FrameError> {
    let n = parse_i64_strict(line).ok_or(FrameError::InvalidLength)?;
    if n == -1 && allow_null {
        return Ok(None);
    }
    if n < 0 || n as u64 > max as u64 {
        return Err(FrameError::InvalidLength);
    }
    usize::try_from(n)
        .map(Some)
        .map_err(|_| FrameError::InvalidLength)
}

/// One pass over a frame: with `out == None` only validates and measures,
/// otherwise also builds the frame and pushes it onto `out`.
/// Returns false when incomplete. Recursion depth is bounded by
/// `limits.max_depth`.
fn scan(
    buf: &[u8],
    pos: &mut usize,
    limits: &Limits,
    depth: usize,
    out: &mut Option<Vec<Frame>>,
) -> Result<bool, FrameError> {
    if depth > limits.max_depth {
        return Err(FrameError::TooDeep);
    }
    let Some(&tag) = buf.get(*pos) else {
        return Ok(false);
    };
    *pos += 1;
    let Some(line) = read_line(buf, pos, limits)? else {
        return Ok(false);
    };
    let build = out.is_some();
    let frame = match tag {
        b'+' => build.then(|| Frame::Simple(Bytes::copy_from_slice(line))),
        b'-' => build.then(|| Frame::Error(Bytes::copy_from_slice(line))),
        b':' => {
            let n = parse_i64_strict(line).ok_or(FrameError::InvalidInteger)?;
            Some(Frame::Integer(n))
        }
        b'_' => {
            if !line.is_empty() {
                return Err(FrameError::Malformed);
            }
            Some(Frame::Null)
        }
        b'#' => match line {
            b"t" => Some(Frame::Boolean(true)),
            b"f" => Some(Frame::Boolean(false)),
            _ => return Err(FrameError::Malformed),
        },
        b',' => Some(Frame::Double(parse_resp_double(line)?)),
        b'(' => {
            let digits = line.strip_prefix(b"-").unwrap_or(line);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(FrameError::Malformed);
            }
            build.then(|| Frame::BigNumber(Bytes::copy_from_slice(line)))
        }
        b'$' | b'=' | b'!' => {
            let Some(len) = read_len(line, limits.max_bulk_len, tag == b'$')? else {
                return Ok(finish(out, Some(Frame::Null)));
            };
            let start = *pos;
            let end = start.checked_add(len).ok_or(FrameError::InvalidLength)?;
            if buf.len() < end.saturating_add(2) {
                return Ok(false);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(FrameError::Malformed);
            }
            *pos = end + 2;
            let data = &buf[start..end];
            match tag {
                b'$' => build.then(|| Frame::Bulk(Bytes::copy_from_slice(data))),
                b'!' => build.then(|| Frame::Error(Bytes::copy_from_slice(data))),
                _ => {
                    if data.len() < 4 || data[3] != b':' {
                        return Err(FrameError::Malformed);
                    }
                    build.then(|| Frame::Verbatim {
                        format: [data[0], data[1], data[2]],
                        data: Bytes::copy_from_slice(&data[4..]),
                    })
                }
            }
        }
        b'*' | b'~' | b'>' | b'%' => {
            let Some(n) = read_len(line, limits.max_multibulk_len, tag == b'*')? else {
                return Ok(finish(out, Some(Frame::NullArray)));
            };
            let items = if tag == b'%' {
                n.checked_mul(2).ok_or(FrameError::InvalidLength)?
            } else {
                n
            };
            let mut children: Option<Vec<Frame>> =
                build.then(|| Vec::with_capacity(items.min(ARGV_PREALLOC)));
            for _ in 0..items {
                if !scan(buf, pos, limits, depth + 1, &mut children)? {
                    return Ok(false);
                }
            }
            children.map(|c| match tag {
                b'*' => Frame::Array(c),
                b'~' => Frame::Set(c),
                b'>' => Frame::Push(c),
                _ => {
                    let mut it = c.into_iter();
                    let mut pairs = Vec::with_capacity(n.min(ARGV_PREALLOC));
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Frame::Map(pairs)
                }
            })
        }
        other => return Err(FrameError::InvalidType(other)),
    };
    Ok(finish(out, frame))
}

fn finish(out: &mut Option<Vec<Frame>>, frame: Option<Frame>) -> bool {
    if let (Some(v), Some(f)) = (out.as_mut(), frame) {
        v.push(f);
    }
    true
}

fn parse_resp_double(line: &[u8]) -> Result<f64, FrameError> {
    match line {
        b"inf" | b"+inf" => return Ok(f64::INFINITY),
        b"-inf" => return Ok(f64::NEG_INFINITY),
        b"nan" | b"-nan" => return Ok(f64::NAN),
        _ => {}
    }
    let s = std::str::from_utf8(line).map_err(|_| FrameError::InvalidDouble)?;
    // Rust's float grammar would also take words like "infinity"; RESP
    // doubles are plain decimals, so restrict the alphabet first.
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'))
    {
        return Err(FrameError::InvalidDouble);
    }
    s.parse::<f64>().map_err(|_| FrameError::InvalidDouble)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut d = RequestDecoder::new(Limits::default());
        let mut buf = BytesMut::from(input);
        let mut cmds = Vec::new();
        loop {
            match d.decode(&mut buf) {
                Ok(Some(args)) => cmds.push(args.iter().map(|a| a.to_vec()).collect()),
                Ok(None) => return (cmds, None),
                Err(e) => return (cmds, Some(e)),
            }
        }
    }

    fn err_text(input: &[u8]) -> String {
        match decode_all(input).1 {
            Some(e) => {
                String::from_utf8_lossy(&e.to_frame().to_bytes(crate::Protocol::Resp2)).into_owned()
            }
            None => "no error".into(),
        }
    }

    #[test]
    fn multibulk_basic_and_pipelined() {
        let (cmds, err) = decode_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n");
        assert!(err.is_none());
        assert_eq!(
            cmds,
            vec![
                vec![b"PING".to_vec()],
                vec![b"ECHO".to_vec(), b"hi".to_vec()]
            ]
        );
    }

    #[test]
    fn byte_by_byte_is_identical() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n";
        let mut d = RequestDecoder::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut cmds = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(args) = d.decode(&mut buf).expect("valid") {
                cmds.push(args);
            }
        }
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0][2], Bytes::from_static(b"hello"));
        assert_eq!(cmds[1][0], Bytes::from_static(b"PING"));
    }

    #[test]
    fn empty_requests_are_skipped() {
        let (cmds, err) = decode_all(b"\r\n*-10\r\n*0\r\n   \r\nPING\r\n");
        assert!(err.is_none());
        assert_eq!(cmds, vec![vec![b"PING".to_vec()]]);
    }

    // The protocol-error texts below are the ones in Redis 7.0's
    // networking.c and tests/unit/protocol.tcl.
    #[test]
    fn redis_protocol_errors() {
        assert_eq!(
            err_text(b"*3000000000\r\n"),
            "-ERR Protocol error: invalid multibulk length\r\n"
        );
        assert_eq!(
            err_text(b"*abc\r\n"),
            "-ERR Protocol error: invalid multibulk length\r\n"
        );
        assert_eq!(
            err_text(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
            "-ERR Protocol error: expected '$', got 'f'\r\n"
        );
        assert_eq!(
            err_text(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n"),
            "-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(
            err_text(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n"),
            "-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(
            err_text(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n"),
            "-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(
            err_text(b"*1\r\nfoo\r\n"),
            "-ERR Protocol error: expected '$', got 'f'\r\n"
        );
        assert_eq!(
            err_text(b"set \"\"\"test-key\"\"\" test-value\r\nping\r\n"),
            "-ERR Protocol error: unbalanced quotes in request\r\n"
        );
        let mut big = vec![0u8];
        big.extend(std::iter::repeat_n(b'A', 70 * 1024));
        assert_eq!(
            err_text(&big),
            "-ERR Protocol error: too big inline request\r\n"
        );
        let mut big = b"*".to_vec();
        big.extend(std::iter::repeat_n(b'1', 70 * 1024));
        assert_eq!(
            err_text(&big),
            "-ERR Protocol error: too big mbulk count string\r\n"
        );
        let mut big = b"*1\r\n$".to_vec();
        big.extend(std::iter::repeat_n(b'1', 70 * 1024));
        assert_eq!(
            err_text(&big),
            "-ERR Protocol error: too big bulk count string\r\n"
        );
    }

    #[test]
    fn limits_are_configurable() {
        let limits = Limits {
            max_bulk_len: 10,
            max_multibulk_len: 2,
            ..Limits::default()
        };
        let mut d = RequestDecoder::new(limits.clone());
        let mut buf = BytesMut::from(&b"*3\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let mut d = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn unauthenticated_limits() {
        let mut d = RequestDecoder::new(Limits::default());
        d.set_auth_required(true);
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );
        let mut d = RequestDecoder::new(Limits::default());
        d.set_auth_required(true);
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );
    }

    #[test]
    fn declared_huge_count_does_not_preallocate() {
        let mut d = RequestDecoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"*1000000\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(d.in_progress());
        assert!(d.pending_bytes() < 1024);
    }

    #[test]
    fn inline_quoting() {
        let split = |s: &[u8]| {
            split_inline_args(s).map(|v| {
                v.into_iter()
                    .map(|a| String::from_utf8_lossy(&a).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            split(b"set a b"),
            Some(vec!["set".into(), "a".into(), "b".into()])
        );
        assert_eq!(
            split(b"  set   \"a b\"  'c d' "),
            Some(vec!["set".into(), "a b".into(), "c d".into()])
        );
        assert_eq!(
            split(b"\"\\x41\\n\\t\\r\\q\""),
            Some(vec!["A\n\t\rq".into()])
        );
        assert_eq!(split(b"'it\\'s'"), Some(vec!["it's".into()]));
        assert_eq!(split(b"'a\\nb'"), Some(vec!["a\\nb".into()]));
        assert_eq!(split(b"foo\"bar baz\""), Some(vec!["foobar baz".into()]));
        assert_eq!(split(b"\"unterminated"), None);
        assert_eq!(split(b"'unterminated"), None);
        assert_eq!(split(b"\"a\"b"), None);
        assert_eq!(split(b"''"), Some(vec!["".into()]));
        assert_eq!(split(b"a\x00b c"), Some(vec!["a".into()]));
        assert_eq!(split(b""), Some(vec![]));
        // \xHH needs two hex digits, otherwise it is the generic escape.
        assert_eq!(split(b"\"\\xZZ\""), Some(vec!["xZZ".into()]));
    }

    #[test]
    fn generic_frames_parse() {
        let l = Limits::default();
        let input = b"%2\r\n+a\r\n,1.5\r\n$1\r\nb\r\n~2\r\n#t\r\n_\r\n";
        let (f, n) = parse_frame(input, &l).expect("ok").expect("complete");
        assert_eq!(n, input.len());
        assert_eq!(
            f,
            Frame::Map(vec![
                (Frame::simple("a"), Frame::Double(1.5)),
                (
                    Frame::from("b"),
                    Frame::Set(vec![Frame::Boolean(true), Frame::Null])
                )
            ])
        );
        assert_eq!(check_frame(&input[..input.len() - 1], &l), Ok(None));
        assert_eq!(
            parse_frame(b"$-1\r\n", &l).expect("ok").map(|x| x.0),
            Some(Frame::Null)
        );
        assert_eq!(
            parse_frame(b"*-1\r\n", &l).expect("ok").map(|x| x.0),
            Some(Frame::NullArray)
        );
        assert_eq!(
            parse_frame(b"|1\r\n", &l),
            Err(FrameError::InvalidType(b'|'))
        );
        assert_eq!(parse_frame(b"$?\r\n", &l), Err(FrameError::InvalidLength));
    }

    #[test]
    fn generic_depth_limit() {
        let l = Limits {
            max_depth: 8,
            ..Limits::default()
        };
        let deep: Vec<u8> = b"*1\r\n"
            .repeat(20)
            .into_iter()
            .chain(b":1\r\n".iter().copied())
            .collect();
        assert_eq!(check_frame(&deep, &l), Err(FrameError::TooDeep));
        let ok: Vec<u8> = b"*1\r\n"
            .repeat(8)
            .into_iter()
            .chain(b":1\r\n".iter().copied())
            .collect();
        assert!(check_frame(&ok, &l).expect("ok").is_some());
    }
}
