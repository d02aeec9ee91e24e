//! The RESP value type (RESP2 and RESP3) and its encoder.
//!
//! A [`Frame`] is protocol-neutral: handlers build one reply and the encoder
//! writes it in the form the connection negotiated (`HELLO 2`/`HELLO 3`),
//! exactly the way Redis 7.0's `addReply*` family does:
//!
//! | frame           | RESP2                        | RESP3            |
//! |-----------------|------------------------------|------------------|
//! | `Null`          | `$-1`                        | `_`              |
//! | `NullArray`     | `*-1`                        | `_`              |
//! | `Map`           | flat array of 2n items       | `%n`             |
//! | `Set`           | array                        | `~n`             |
//! | `Double`        | bulk string (`%.17g`)        | `,` (`%.17g`)    |
//! | `Boolean`       | integer `1`/`0`              | `#t`/`#f`        |
//! | `BigNumber`     | bulk string                  | `(`              |
//! | `Verbatim`      | bulk string (text only)      | `=len\r\nfmt:..` |
//! | `Push`          | array                        | `>n`             |
//!
//! RESP3 attributes (`|`) and streamed aggregates are deliberately not
//! represented: Redis itself never sends them to ordinary clients.
//!
//! Parsing lives in [`crate::resp`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::float;

/// Which RESP dialect a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default for every new connection.
    #[default]
    Resp2,
    /// RESP3, selected with `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The protocol number as `HELLO` reports it.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A command's reply (any frame).
pub type Reply = Frame;

/// One RESP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+text` — must not contain CR or LF (the encoder replaces them).
    Simple(Bytes),
    /// `-CODE text` — the whole text after the `-`, e.g. `ERR syntax error`.
    Error(Bytes),
    /// `:n`
    Integer(i64),
    /// `$n` binary-safe string.
    Bulk(Bytes),
    /// The null *string* (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// The null *array* (`*-1` in RESP2, `_` in RESP3).
    NullArray,
    /// `*n`
    Array(Vec<Frame>),
    /// RESP3 `%n`; a flat array under RESP2.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~n`; an array under RESP2.
    Set(Vec<Frame>),
    /// RESP3 `,d`; a bulk string under RESP2.
    Double(f64),
    /// RESP3 `#t`/`#f`; integer 1/0 under RESP2.
    Boolean(bool),
    /// RESP3 `(digits`; a bulk string under RESP2.
    BigNumber(Bytes),
    /// RESP3 `=` verbatim string with a three-byte format such as `txt`.
    Verbatim {
        /// Format tag, e.g. `*b"txt"` or `*b"mkd"`.
        format: [u8; 3],
        /// The text itself.
        data: Bytes,
    },
    /// RESP3 `>n` out-of-band push (pub/sub); an array under RESP2.
    Push(Vec<Frame>),
}

impl Frame {
    /// `+OK`
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A simple string from static text.
    pub fn simple(s: &'static str) -> Frame {
        Frame::Simple(Bytes::from_static(s.as_bytes()))
    }

    /// A bulk string copied from any byte slice.
    pub fn bulk(b: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(b.as_ref()))
    }

    /// An error reply following Redis's `addReplyError` convention: a message
    /// that already starts with `-` carries its own code (`-WRONGTYPE ...`,
    /// `-NOAUTH ...`) and is used as is, anything else gets the `ERR ` code.
    pub fn error(msg: impl AsRef<str>) -> Frame {
        let msg = msg.as_ref();
        match msg.strip_prefix('-') {
            Some(rest) => Frame::Error(Bytes::copy_from_slice(rest.as_bytes())),
            None => Frame::Error(Bytes::from(format!("ERR {msg}"))),
        }
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Writes the frame in the given protocol.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => line(out, b'+', s),
            Frame::Error(s) => line(out, b'-', s),
            Frame::Integer(n) => header(out, b':', *n),
            Frame::Bulk(b) => bulk(out, b),
            Frame::Null => match proto {
                Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Frame::NullArray => match proto {
                Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Frame::Array(items) => {
                header(out, b'*', len_i64(items.len()));
                for item in items {
                    item.encode(proto, out);
                }
            }
            Frame::Map(pairs) => {
                match proto {
                    Protocol::Resp2 => header(out, b'*', len_i64(pairs.len()).saturating_mul(2)),
                    Protocol::Resp3 => header(out, b'%', len_i64(pairs.len())),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Set(items) => {
                let tag = match proto {
                    Protocol::Resp2 => b'*',
                    Protocol::Resp3 => b'~',
                };
                header(out, tag, len_i64(items.len()));
                for item in items {
                    item.encode(proto, out);
                }
            }
            Frame::Push(items) => {
                let tag = match proto {
                    Protocol::Resp2 => b'*',
                    Protocol::Resp3 => b'>',
                };
                header(out, tag, len_i64(items.len()));
                for item in items {
                    item.encode(proto, out);
                }
            }
            Frame::Double(d) => {
                // addReplyDouble: inf is spelled explicitly, everything else
                // is `%.17g`.
                let text = float::format_double_g17(*d);
                match proto {
                    Protocol::Resp2 => bulk(out, text.as_bytes()),
                    Protocol::Resp3 => {
                        out.put_u8(b',');
                        out.put_slice(text.as_bytes());
                        out.put_slice(b"\r\n");
                    }
                }
            }
            Frame::Boolean(b) => match proto {
                Protocol::Resp2 => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
                Protocol::Resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            },
            Frame::BigNumber(n) => match proto {
                Protocol::Resp2 => bulk(out, n),
                Protocol::Resp3 => line(out, b'(', n),
            },
            Frame::Verbatim { format, data } => match proto {
                Protocol::Resp2 => bulk(out, data),
                Protocol::Resp3 => {
                    header(out, b'=', len_i64(data.len()).saturating_add(4));
                    out.put_slice(format);
                    out.put_u8(b':');
                    out.put_slice(data);
                    out.put_slice(b"\r\n");
                }
            },
        }
    }

    /// Encodes into a fresh buffer (convenience for tests and small replies).
    pub fn to_bytes(&self, proto: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(proto, &mut out);
        out.freeze()
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn header(out: &mut BytesMut, tag: u8, n: i64) {
    out.put_u8(tag);
    put_i64(out, n);
    out.put_slice(b"\r\n");
}

/// Decimal formatting without a heap allocation (headers are written for
/// every reply element).
fn put_i64(out: &mut BytesMut, n: i64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&buf[i..]);
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    header(out, b'$', len_i64(b.len()));
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// A line-typed value: CR and LF would break framing, so they are replaced
/// by spaces, as Redis does for error strings built from user input.
fn line(out: &mut BytesMut, tag: u8, s: &[u8]) {
    out.put_u8(tag);
    if memchr::memchr2(b'\r', b'\n', s).is_some() {
        out.extend(
            s.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.put_slice(s);
    }
    out.put_slice(b"\r\n");
}

impl From<&'static str> for Frame {
    /// A static string becomes a bulk string.
    fn from(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }
}

impl From<i64> for Frame {
    fn from(n: i64) -> Frame {
        Frame::Integer(n)
    }
}

impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Frame {
        Frame::Bulk(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, p: Protocol) -> String {
        String::from_utf8_lossy(&f.to_bytes(p)).into_owned()
    }

    #[test]
    fn nulls_differ_by_protocol() {
        assert_eq!(enc(&Frame::Null, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(&Frame::NullArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(enc(&Frame::Null, Protocol::Resp3), "_\r\n");
        assert_eq!(enc(&Frame::NullArray, Protocol::Resp3), "_\r\n");
    }

    #[test]
    fn map_is_flat_array_in_resp2() {
        let m = Frame::Map(vec![(Frame::from("a"), Frame::Integer(1))]);
        assert_eq!(enc(&m, Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn double_forms() {
        assert_eq!(enc(&Frame::Double(1.5), Protocol::Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Frame::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(
            enc(&Frame::Double(f64::INFINITY), Protocol::Resp2),
            "$3\r\ninf\r\n"
        );
        assert_eq!(
            enc(&Frame::Double(f64::NEG_INFINITY), Protocol::Resp3),
            ",-inf\r\n"
        );
        assert_eq!(
            enc(&Frame::Double(0.1), Protocol::Resp3),
            ",0.10000000000000001\r\n"
        );
    }

    #[test]
    fn bool_set_push_bignum_verbatim() {
        assert_eq!(enc(&Frame::Boolean(true), Protocol::Resp2), ":1\r\n");
        assert_eq!(enc(&Frame::Boolean(false), Protocol::Resp3), "#f\r\n");
        let s = Frame::Set(vec![Frame::Integer(1)]);
        assert_eq!(enc(&s, Protocol::Resp2), "*1\r\n:1\r\n");
        assert_eq!(enc(&s, Protocol::Resp3), "~1\r\n:1\r\n");
        let p = Frame::Push(vec![Frame::from("message")]);
        assert_eq!(enc(&p, Protocol::Resp3), ">1\r\n$7\r\nmessage\r\n");
        let b = Frame::BigNumber(Bytes::from_static(b"1234567890123456789012"));
        assert_eq!(enc(&b, Protocol::Resp3), "(1234567890123456789012\r\n");
        assert_eq!(
            enc(&b, Protocol::Resp2),
            "$22\r\n1234567890123456789012\r\n"
        );
        let v = Frame::Verbatim {
            format: *b"txt",
            data: Bytes::from_static(b"hi"),
        };
        assert_eq!(enc(&v, Protocol::Resp3), "=6\r\ntxt:hi\r\n");
        assert_eq!(enc(&v, Protocol::Resp2), "$2\r\nhi\r\n");
    }

    #[test]
    fn errors_follow_add_reply_error() {
        assert_eq!(
            enc(&Frame::error("syntax error"), Protocol::Resp2),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            enc(&Frame::error("-WRONGTYPE Operation"), Protocol::Resp2),
            "-WRONGTYPE Operation\r\n"
        );
        // Newlines from user input never break framing.
        assert_eq!(
            enc(&Frame::error("a\r\nb"), Protocol::Resp2),
            "-ERR a  b\r\n"
        );
    }
}
