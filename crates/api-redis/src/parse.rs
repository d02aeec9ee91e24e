//! A parsed command ([`Command`]) and a cursor over its arguments
//! ([`ArgCursor`]) whose conversions and error replies match Redis's
//! (`getLongLongFromObjectOrReply`, `getDoubleFromObjectOrReply`,
//! `shared.syntaxerr`, `addReplyErrorArity`, ...), so command
//! implementations get Redis-exact error texts for free.

use bytes::Bytes;
use thiserror::Error;

use crate::command_table::CommandSpec;
use crate::float;
use crate::frame::Frame;

/// Errors a command's argument parsing can produce; each maps to the exact
/// error reply Redis sends.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CmdError {
    /// Arity mismatch; holds the command's lower-case full name
    /// (`get`, `client|setname`).
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// `shared.syntaxerr`.
    #[error("ERR syntax error")]
    Syntax,
    /// Not a valid signed 64-bit integer (`string2ll` rules).
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// Not a valid double (`string2d` rules).
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// An integer that parsed but is outside the permitted range.
    #[error("ERR value is out of range, must be positive")]
    NotPositive,
    /// Any other error; the text is complete, including its code
    /// (`ERR ...`, `WRONGTYPE ...`).
    #[error("{0}")]
    Other(String),
}

impl CmdError {
    /// A free-form `ERR <msg>` error.
    pub fn err(msg: impl Into<String>) -> CmdError {
        CmdError::Other(format!("ERR {}", msg.into()))
    }

    /// The reply frame.
    pub fn to_frame(&self) -> Frame {
        Frame::Error(Bytes::from(self.to_string()))
    }
}

impl From<CmdError> for Frame {
    fn from(e: CmdError) -> Frame {
        e.to_frame()
    }
}

/// One client request: the command name followed by its arguments, and,
/// once the server has resolved it, its command-table entry.
#[derive(Clone, Debug)]
pub struct Command {
    argv: Vec<Bytes>,
    spec: Option<&'static CommandSpec>,
}

impl PartialEq for Command {
    fn eq(&self, other: &Self) -> bool {
        self.argv == other.argv
    }
}

impl Eq for Command {}

impl Command {
    /// Wraps an argument vector. Returns `None` for an empty one (the
    /// decoder never produces those).
    pub fn new(argv: Vec<Bytes>) -> Option<Command> {
        if argv.is_empty() {
            None
        } else {
            Some(Command { argv, spec: None })
        }
    }

    /// Attaches the resolved command-table entry (done by the server
    /// before dispatch, so handlers need not look it up again).
    pub fn with_spec(mut self, spec: &'static CommandSpec) -> Command {
        self.spec = Some(spec);
        self
    }

    /// The resolved command-table entry (`client|setname` for
    /// subcommands), if the server attached one.
    pub fn spec(&self) -> Option<&'static CommandSpec> {
        self.spec
    }

    /// Builds a command from string parts (tests, internal callers).
    pub fn from_parts<I, S>(parts: I) -> Option<Command>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        Command::new(
            parts
                .into_iter()
                .map(|p| Bytes::copy_from_slice(p.as_ref()))
                .collect(),
        )
    }

    /// The command name exactly as sent.
    pub fn name(&self) -> &[u8] {
        &self.argv[0]
    }

    /// The command name in lower case, as used in error messages and
    /// the command table.
    pub fn name_lower(&self) -> String {
        String::from_utf8_lossy(&self.argv[0]).to_ascii_lowercase()
    }

    /// All of argv including the name.
    pub fn argv(&self) -> &[Bytes] {
        &self.argv
    }

    /// Takes argv back.
    pub fn into_argv(self) -> Vec<Bytes> {
        self.argv
    }

    /// Number of items in argv, including the name (Redis's `argc`).
    pub fn argc(&self) -> usize {
        self.argv.len()
    }

    /// The arguments after the name.
    pub fn args(&self) -> &[Bytes] {
        &self.argv[1..]
    }

    /// Case-insensitive name comparison.
    pub fn is(&self, name: &str) -> bool {
        self.argv[0].eq_ignore_ascii_case(name.as_bytes())
    }

    /// A cursor positioned on the first argument after the name.
    pub fn cursor(&self) -> ArgCursor<'_> {
        ArgCursor {
            argv: &self.argv,
            pos: 1,
        }
    }
}

/// Sequential reader over a command's arguments.
#[derive(Clone, Debug)]
pub struct ArgCursor<'a> {
    argv: &'a [Bytes],
    pos: usize,
}

impl<'a> ArgCursor<'a> {
    /// A cursor over `argv` (which includes the command name) starting at
    /// index `pos`.
    pub fn new(argv: &'a [Bytes], pos: usize) -> Self {
        ArgCursor { argv, pos }
    }

    fn arity_error(&self) -> CmdError {
        let name = self
            .argv
            .first()
            .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
            .unwrap_or_default();
        CmdError::WrongArity(name)
    }

    /// Arguments not yet consumed.
    pub fn remaining(&self) -> usize {
        self.argv.len().saturating_sub(self.pos)
    }

    /// True when every argument has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Index of the next argument in argv.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next argument without consuming it.
    pub fn peek(&self) -> Option<&'a Bytes> {
        self.argv.get(self.pos)
    }

    /// The next argument; a missing one is an arity error.
    pub fn next_bytes(&mut self) -> Result<&'a Bytes, CmdError> {
        let arg = self.argv.get(self.pos).ok_or_else(|| self.arity_error())?;
        self.pos += 1;
        Ok(arg)
    }

    /// The next argument, if any.
    pub fn next_opt(&mut self) -> Option<&'a Bytes> {
        let arg = self.argv.get(self.pos)?;
        self.pos += 1;
        Some(arg)
    }

    /// All remaining arguments.
    pub fn rest(&mut self) -> &'a [Bytes] {
        let start = self.pos.min(self.argv.len());
        self.pos = self.argv.len();
        &self.argv[start..]
    }

    /// The next argument as a signed 64-bit integer (Redis `string2ll`).
    pub fn next_i64(&mut self) -> Result<i64, CmdError> {
        parse_i64_strict(self.next_bytes()?).ok_or(CmdError::NotInteger)
    }

    /// The next argument as a non-negative integer; a negative one gets
    /// `ERR value is out of range, must be positive`.
    pub fn next_u64(&mut self) -> Result<u64, CmdError> {
        let n = self.next_i64()?;
        u64::try_from(n).map_err(|_| CmdError::NotPositive)
    }

    /// The next argument as an integer within `[min, max]`; outside it the
    /// reply is `ERR value is out of range, value must between min and max`
    /// (sic, as Redis's `getRangeLongFromObjectOrReply`).
    pub fn next_i64_in(&mut self, min: i64, max: i64) -> Result<i64, CmdError> {
        let n = self.next_i64()?;
        if n < min || n > max {
            return Err(CmdError::err(format!(
                "value is out of range, value must between {min} and {max}"
            )));
        }
        Ok(n)
    }

    /// The next argument as a double (Redis `string2d`: `inf`, `-inf`,
    /// hex floats accepted; NaN, spaces and overflow rejected).
    pub fn next_f64(&mut self) -> Result<f64, CmdError> {
        float::parse_double(self.next_bytes()?).ok_or(CmdError::NotFloat)
    }

    /// Consumes the next argument if it equals `keyword`, ignoring ASCII case.
    pub fn eat_keyword(&mut self, keyword: &str) -> bool {
        match self.peek() {
            Some(arg) if arg.eq_ignore_ascii_case(keyword.as_bytes()) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    /// Consumes the next argument if it is one of `keywords` (ASCII
    /// case-insensitive) and returns its index in `keywords`.
    pub fn eat_one_of(&mut self, keywords: &[&str]) -> Option<usize> {
        let arg = self.peek()?;
        let idx = keywords
            .iter()
            .position(|k| arg.eq_ignore_ascii_case(k.as_bytes()))?;
        self.pos += 1;
        Some(idx)
    }

    /// The next argument must be one of `keywords`; anything else (or
    /// nothing) is a syntax error.
    pub fn expect_one_of(&mut self, keywords: &[&str]) -> Result<usize, CmdError> {
        self.eat_one_of(keywords).ok_or(CmdError::Syntax)
    }

    /// Fails with a syntax error if arguments are left over.
    pub fn expect_end(&self) -> Result<(), CmdError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(CmdError::Syntax)
        }
    }
}

/// Redis's `string2ll`: optional `-`, no `+`, no leading zeros (except
/// `0` itself), no blanks, at most 20 characters, must fit in `i64`.
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE is 21: a string of 21 or more bytes is rejected outright.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"-1"), Some(-1));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"000000000000000000001",
            b"0x10",
        ] {
            assert_eq!(
                parse_i64_strict(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn cursor_errors_match_redis() {
        let cmd =
            Command::from_parts(["ZADD", "k", "abc", "1.5x", "NX", "extra"]).expect("non-empty");
        let mut c = cmd.cursor();
        assert_eq!(c.next_bytes().map(|b| b.to_vec()), Ok(b"k".to_vec()));
        assert_eq!(
            c.clone().next_i64().map_err(|e| e.to_string()),
            Err("ERR value is not an integer or out of range".into())
        );
        assert_eq!(
            c.next_f64().map_err(|e| e.to_string()),
            Err("ERR value is not a valid float".into())
        );
        assert_eq!(
            c.next_f64().map_err(|e| e.to_string()),
            Err("ERR value is not a valid float".into())
        );
        assert!(c.eat_keyword("nx"));
        assert_eq!(
            c.expect_end().map_err(|e| e.to_string()),
            Err("ERR syntax error".into())
        );
        c.next_bytes().expect("extra");
        assert_eq!(
            c.next_bytes().map_err(|e| e.to_string()),
            Err("ERR wrong number of arguments for 'zadd' command".into())
        );
    }

    #[test]
    fn keywords_case_insensitive() {
        let cmd = Command::from_parts(["SET", "k", "v", "px", "10"]).expect("non-empty");
        let mut c = cmd.cursor();
        c.next_bytes().expect("k");
        c.next_bytes().expect("v");
        assert_eq!(c.eat_one_of(&["EX", "PX"]), Some(1));
        assert_eq!(c.next_u64(), Ok(10));
        assert!(c.is_empty());
        let cmd = Command::from_parts(["X", "-5", "7"]).expect("non-empty");
        let mut c = cmd.cursor();
        assert_eq!(c.next_u64(), Err(CmdError::NotPositive));
        assert_eq!(
            c.next_i64_in(0, 5).map_err(|e| e.to_string()),
            Err("ERR value is out of range, value must between 0 and 5".into())
        );
    }
}
