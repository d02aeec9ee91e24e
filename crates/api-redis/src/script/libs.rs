//! The Lua libraries Redis scripts can use, written in Rust from their
//! documented behaviour: `bit` (LuaBitOp), `cjson`, `cmsgpack` and
//! `struct`.
//!
//! Every function here is "raw": it returns `true, results...` or
//! `false, message` and never raises; the prelude in [`super::engine`]
//! wraps it so the error is raised at the script's line, as Lua's C
//! libraries do.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{Lua, MultiValue, Table, Value, Variadic};

/// Deepest nesting cmsgpack encodes (deeper tables become nil, which is
/// how lua-cmsgpack copes with cycles).
const MSGPACK_MAX_NESTING: usize = 16;

/// Most bytes one encoder call may produce.
const MAX_ENCODED: usize = 512 * 1024 * 1024;

type Ret = mlua::Result<MultiValue>;

fn ok(lua: &Lua, vals: Vec<Value>) -> Ret {
    let mut out = Vec::with_capacity(vals.len() + 1);
    out.push(Value::Boolean(true));
    out.extend(vals);
    let _ = lua;
    Ok(MultiValue::from_iter(out))
}

fn fail(lua: &Lua, msg: impl AsRef<str>) -> Ret {
    Ok(MultiValue::from_iter([
        Value::Boolean(false),
        Value::String(lua.create_string(msg.as_ref())?),
    ]))
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        Value::String(s) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    }
}

/// Installs `raw.bit`, `raw.cjson`, `raw.cjson_null`, `raw.cmsgpack` and
/// `raw.struct`.
pub fn install(lua: &Lua, raw: &Table) -> mlua::Result<()> {
    raw.raw_set("bit", bit_lib(lua)?)?;
    raw.raw_set("cjson", cjson_lib(lua)?)?;
    raw.raw_set("cjson_null", Value::NULL)?;
    raw.raw_set("cmsgpack", msgpack_lib(lua)?)?;
    raw.raw_set("struct", struct_lib(lua)?)?;
    Ok(())
}

// ---------------------------------------------------------------- bit

/// LuaBitOp's normalisation of a number to a signed 32-bit integer: the
/// number is rounded and taken modulo 2^32 (the "add 2^52+2^51" trick).
pub fn tobit(n: f64) -> i32 {
    (n + 6_755_399_441_055_744.0).to_bits() as u32 as i32
}

fn bit_args(lua: &Lua, args: &Variadic<Value>, min: usize) -> Result<Vec<i32>, Ret> {
    if args.len() < min {
        return Err(fail(lua, "bad argument #1 (number expected, got no value)"));
    }
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        match num(a) {
            Some(n) => out.push(tobit(n)),
            None => {
                return Err(fail(
                    lua,
                    format!(
                        "bad argument #{} (number expected, got {})",
                        i + 1,
                        a.type_name()
                    ),
                ))
            }
        }
    }
    Ok(out)
}

fn bit_lib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    type Fold = fn(i32, i32) -> i32;
    let folds: [(&str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, f) in folds {
        t.raw_set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| {
                let v = match bit_args(lua, &args, 1) {
                    Ok(v) => v,
                    Err(r) => return r,
                };
                let r = v[1..].iter().fold(v[0], |acc, &x| f(acc, x));
                ok(lua, vec![Value::Number(f64::from(r))])
            })?,
        )?;
    }
    type Unary = fn(i32) -> i32;
    let unary: [(&str, Unary); 3] = [
        ("tobit", |a| a),
        ("bnot", |a| !a),
        ("bswap", |a| a.swap_bytes()),
    ];
    for (name, f) in unary {
        t.raw_set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| {
                let v = match bit_args(lua, &args, 1) {
                    Ok(v) => v,
                    Err(r) => return r,
                };
                ok(lua, vec![Value::Number(f64::from(f(v[0])))])
            })?,
        )?;
    }
    type Shift = fn(i32, u32) -> i32;
    let shifts: [(&str, Shift); 5] = [
        ("lshift", |a, n| ((a as u32) << n) as i32),
        ("rshift", |a, n| ((a as u32) >> n) as i32),
        ("arshift", |a, n| a >> n),
        ("rol", |a, n| (a as u32).rotate_left(n) as i32),
        ("ror", |a, n| (a as u32).rotate_right(n) as i32),
    ];
    for (name, f) in shifts {
        t.raw_set(
            name,
            lua.create_function(move |lua, args: Variadic<Value>| {
                let v = match bit_args(lua, &args, 2) {
                    Ok(v) => v,
                    Err(r) => return r,
                };
                // Shift counts use their low five bits.
                let r = f(v[0], (v[1] as u32) & 31);
                ok(lua, vec![Value::Number(f64::from(r))])
            })?,
        )?;
    }
    t.raw_set(
        "tohex",
        lua.create_function(|lua, args: Variadic<Value>| {
            let v = match bit_args(lua, &args, 1) {
                Ok(v) => v,
                Err(r) => return r,
            };
            ok(
                lua,
                vec![Value::String(
                    lua.create_string(tohex(v[0], v.get(1).copied()))?,
                )],
            )
        })?,
    )?;
    Ok(t)
}

/// `bit.tohex(x [, n])`: |n| hex digits (at most 8, default 8),
/// uppercase for negative n. n = -2^31 (whose negation overflows) counts
/// as 8 uppercase digits.
pub fn tohex(x: i32, n: Option<i32>) -> String {
    let n = n.unwrap_or(8);
    let upper = n < 0;
    let digits = n.unsigned_abs().min(8) as usize;
    let mut out = String::with_capacity(digits);
    let table: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut v = x as u32;
    let mut buf = [b'0'; 8];
    for i in (0..digits).rev() {
        buf[i] = table[(v & 15) as usize];
        v >>= 4;
    }
    out.push_str(std::str::from_utf8(&buf[..digits]).unwrap_or(""));
    out
}

// ---------------------------------------------------------------- cjson

struct JsonCfg {
    encode_max_depth: Cell<usize>,
    decode_max_depth: Cell<usize>,
    encode_invalid_numbers: Cell<bool>,
    decode_invalid_numbers: Cell<bool>,
}

fn cjson_lib(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Rc::new(JsonCfg {
        encode_max_depth: Cell::new(1000),
        decode_max_depth: Cell::new(1000),
        encode_invalid_numbers: Cell::new(false),
        decode_invalid_numbers: Cell::new(true),
    });
    let t = lua.create_table()?;
    let c = Rc::clone(&cfg);
    t.raw_set(
        "encode",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return fail(lua, "bad argument #1 to 'encode' (expected 1 argument)");
            }
            let mut out = Vec::new();
            match json_encode(&args[0], &c, 0, &mut out) {
                Ok(()) => ok(lua, vec![Value::String(lua.create_string(&out)?)]),
                Err(e) => fail(lua, e),
            }
        })?,
    )?;
    let c = Rc::clone(&cfg);
    t.raw_set(
        "decode",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let s = match args.first() {
                Some(Value::String(s)) if args.len() == 1 => s.as_bytes().to_vec(),
                _ => return fail(lua, "bad argument #1 to 'decode' (expected 1 argument)"),
            };
            let mut p = JsonParser {
                s: &s,
                pos: 0,
                lua,
                max_depth: c.decode_max_depth.get(),
                invalid_numbers: c.decode_invalid_numbers.get(),
            };
            match p.parse_document() {
                Ok(v) => ok(lua, vec![v]),
                Err(JsonErr::Msg(m)) => fail(lua, m),
                Err(JsonErr::Lua(e)) => Err(e),
            }
        })?,
    )?;
    // Configuration functions: setters return the current setting.
    let c = Rc::clone(&cfg);
    t.raw_set(
        "encode_max_depth",
        lua.create_function(move |lua, n: Option<f64>| {
            if let Some(n) = n {
                if n < 1.0 {
                    return fail(lua, "bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)");
                }
                c.encode_max_depth.set(n as usize);
            }
            ok(lua, vec![Value::Number(c.encode_max_depth.get() as f64)])
        })?,
    )?;
    let c = Rc::clone(&cfg);
    t.raw_set(
        "decode_max_depth",
        lua.create_function(move |lua, n: Option<f64>| {
            if let Some(n) = n {
                if n < 1.0 {
                    return fail(lua, "bad argument #1 to 'decode_max_depth' (expected integer between 1 and 2147483647)");
                }
                c.decode_max_depth.set(n as usize);
            }
            ok(lua, vec![Value::Number(c.decode_max_depth.get() as f64)])
        })?,
    )?;
    let c = Rc::clone(&cfg);
    t.raw_set(
        "encode_invalid_numbers",
        lua.create_function(move |lua, v: Value| {
            if let Value::Boolean(b) = v {
                c.encode_invalid_numbers.set(b);
            }
            ok(lua, vec![Value::Boolean(c.encode_invalid_numbers.get())])
        })?,
    )?;
    let c = Rc::clone(&cfg);
    t.raw_set(
        "decode_invalid_numbers",
        lua.create_function(move |lua, v: Value| {
            if let Value::Boolean(b) = v {
                c.decode_invalid_numbers.set(b);
            }
            ok(lua, vec![Value::Boolean(c.decode_invalid_numbers.get())])
        })?,
    )?;
    for name in [
        "encode_keep_buffer",
        "encode_number_precision",
        "encode_sparse_array",
    ] {
        t.raw_set(
            name,
            lua.create_function(|lua, _: MultiValue| ok(lua, vec![Value::Boolean(true)]))?,
        )?;
    }
    Ok(t)
}

/// cjson's number format (`%.14g`; integers plainly).
fn json_number(n: f64) -> String {
    super::engine::number_text(n)
}

fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => {
                out.extend_from_slice(format!("\\u{:04x}", c).as_bytes());
            }
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn json_encode(v: &Value, cfg: &JsonCfg, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if out.len() > MAX_ENCODED {
        return Err("encoded JSON is too large".into());
    }
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                if !cfg.encode_invalid_numbers.get() {
                    return Err("Cannot serialise number: must not be NaN or Inf".into());
                }
                let s = if n.is_nan() {
                    "nan"
                } else if *n > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                out.extend_from_slice(s.as_bytes());
            } else {
                out.extend_from_slice(json_number(*n).as_bytes());
            }
        }
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => {
            if depth + 1 > cfg.encode_max_depth.get() {
                return Err(format!(
                    "Cannot serialise, excessive nesting ({})",
                    depth + 1
                ));
            }
            // An array when every key is a positive integer (holes
            // filled with null, as cjson does for moderately sparse
            // arrays).
            let mut max = 0usize;
            let mut count = 0usize;
            let mut is_array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair.map_err(|e| e.to_string())?;
                count += 1;
                match k {
                    Value::Number(n) if n >= 1.0 && n.fract() == 0.0 => max = max.max(n as usize),
                    Value::Integer(i) if i >= 1 => max = max.max(i as usize),
                    _ => is_array = false,
                }
            }
            if is_array && count > 0 && max > count * 2 && max > 10 {
                return Err("Cannot serialise table: excessively sparse array".into());
            }
            if is_array && count > 0 {
                out.push(b'[');
                for i in 1..=max {
                    if i > 1 {
                        out.push(b',');
                    }
                    let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                    json_encode(&item, cfg, depth + 1, out)?;
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for pair in t.pairs::<Value, Value>() {
                    let (k, val) = pair.map_err(|e| e.to_string())?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    match &k {
                        Value::String(s) => json_string(&s.as_bytes(), out),
                        Value::Number(n) => json_string(json_number(*n).as_bytes(), out),
                        Value::Integer(i) => json_string(i.to_string().as_bytes(), out),
                        other => {
                            return Err(format!(
                                "Cannot serialise {}: table key must be a number or string",
                                other.type_name()
                            ))
                        }
                    }
                    out.push(b':');
                    json_encode(&val, cfg, depth + 1, out)?;
                }
                out.push(b'}');
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ))
        }
    }
    Ok(())
}

enum JsonErr {
    Msg(String),
    Lua(mlua::Error),
}

impl From<mlua::Error> for JsonErr {
    fn from(e: mlua::Error) -> Self {
        JsonErr::Lua(e)
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    pos: usize,
    lua: &'a Lua,
    max_depth: usize,
    invalid_numbers: bool,
}

impl JsonParser<'_> {
    fn err<T>(&self, expected: &str, found: &str) -> Result<T, JsonErr> {
        Err(JsonErr::Msg(format!(
            "Expected {expected} but found {found} at character {}",
            self.pos + 1
        )))
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn token_name(&self) -> &'static str {
        match self.s.get(self.pos) {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b',') => "T_COMMA",
            Some(b':') => "T_COLON",
            Some(b'"') => "T_STRING",
            Some(b't') | Some(b'f') => "T_BOOLEAN",
            Some(b'n') => "T_NULL",
            Some(c) if c.is_ascii_digit() || *c == b'-' => "T_NUMBER",
            _ => "invalid token",
        }
    }

    fn parse_document(&mut self) -> Result<Value, JsonErr> {
        let v = self.parse_value(0)?;
        self.skip_ws();
        if self.pos < self.s.len() {
            let found = self.token_name();
            return self.err("the end", found);
        }
        Ok(v)
    }

    fn parse_value(&mut self, depth: usize) -> Result<Value, JsonErr> {
        self.skip_ws();
        let Some(&c) = self.s.get(self.pos) else {
            return self.err("value", "T_END");
        };
        match c {
            b'{' | b'[' => {
                if depth + 1 > self.max_depth {
                    return Err(JsonErr::Msg(format!(
                        "Found too many nested data structures ({}) at character {}",
                        depth + 1,
                        self.pos + 1
                    )));
                }
                if c == b'{' {
                    self.parse_object(depth + 1)
                } else {
                    self.parse_array(depth + 1)
                }
            }
            b'"' => Ok(Value::String(self.lua.create_string(self.parse_string()?)?)),
            b't' if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(Value::NULL)
            }
            _ => self.parse_number(),
        }
    }

    fn parse_number(&mut self) -> Result<Value, JsonErr> {
        let start = self.pos;
        while self.pos < self.s.len()
            && matches!(self.s[self.pos], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'x' | b'X' | b'a'..=b'd' | b'f' | b'A'..=b'D' | b'F' | b'i' | b'n' | b'I' | b'N')
        {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        let lower = text.to_ascii_lowercase();
        let parsed = match lower.as_str() {
            "nan" | "-nan" if self.invalid_numbers => Some(f64::NAN),
            "inf" | "infinity" if self.invalid_numbers => Some(f64::INFINITY),
            "-inf" | "-infinity" if self.invalid_numbers => Some(f64::NEG_INFINITY),
            _ if text.is_empty() => None,
            _ => text.parse::<f64>().ok(),
        };
        match parsed {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.pos = start;
                self.err("value", "invalid token")
            }
        }
    }

    fn parse_string(&mut self) -> Result<Vec<u8>, JsonErr> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                self.pos = start;
                return self.err("value", "invalid token");
            };
            self.pos += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        self.pos = start;
                        return self.err("value", "invalid token");
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let cp = self.hex4();
                            let Some(mut cp) = cp else {
                                self.pos = start;
                                return self.err("value", "invalid token");
                            };
                            if (0xD800..0xDC00).contains(&cp)
                                && self.s[self.pos..].starts_with(b"\\u")
                            {
                                self.pos += 2;
                                if let Some(lo) = self.hex4() {
                                    if (0xDC00..0xE000).contains(&lo) {
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                    }
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            self.pos = start;
                            return self.err("value", "invalid token");
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.pos..self.pos + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.pos += 4;
        Some(v)
    }

    fn parse_object(&mut self, depth: usize) -> Result<Value, JsonErr> {
        self.pos += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Table(t));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b'"') {
                let found = self.token_name();
                return self.err("object key string", found);
            }
            let k = self.parse_string()?;
            self.skip_ws();
            if self.s.get(self.pos) != Some(&b':') {
                let found = self.token_name();
                return self.err("colon", found);
            }
            self.pos += 1;
            let v = self.parse_value(depth)?;
            t.raw_set(self.lua.create_string(&k)?, v)?;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                _ => {
                    let found = self.token_name();
                    return self.err("comma or object end", found);
                }
            }
        }
    }

    fn parse_array(&mut self, depth: usize) -> Result<Value, JsonErr> {
        self.pos += 1;
        let t = self.lua.create_table()?;
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Table(t));
        }
        let mut i = 1;
        loop {
            let v = self.parse_value(depth)?;
            t.raw_set(i, v)?;
            i += 1;
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Table(t));
                }
                _ => {
                    let found = self.token_name();
                    return self.err("comma or array end", found);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- cmsgpack

fn msgpack_lib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.is_empty() {
                return fail(lua, "MessagePack pack needs input.");
            }
            let mut out = Vec::new();
            for a in args.iter() {
                if let Err(e) = mp_encode(a, 0, &mut out) {
                    return fail(lua, e);
                }
            }
            ok(lua, vec![Value::String(lua.create_string(&out)?)])
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: Value| {
            let Value::String(s) = s else {
                return fail(lua, "bad argument #1 to 'unpack' (string expected)");
            };
            let bytes = s.as_bytes().to_vec();
            match mp_decode_many(lua, &bytes, 0, 0) {
                Ok((_, vals)) => ok(lua, vals),
                Err(MpErr::Msg(m)) => fail(lua, m),
                Err(MpErr::Lua(e)) => Err(e),
            }
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (Value, Option<f64>)| {
            let Value::String(s) = s else {
                return fail(lua, "bad argument #1 to 'unpack_one' (string expected)");
            };
            let bytes = s.as_bytes().to_vec();
            unpack_limited(lua, &bytes, 1, offset.unwrap_or(0.0))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (Value, Option<f64>, Option<f64>)| {
                let Value::String(s) = s else {
                    return fail(lua, "bad argument #1 to 'unpack_limit' (string expected)");
                };
                let bytes = s.as_bytes().to_vec();
                let limit = limit.unwrap_or(0.0).max(0.0) as usize;
                unpack_limited(lua, &bytes, limit, offset.unwrap_or(0.0))
            },
        )?,
    )?;
    Ok(t)
}

fn unpack_limited(lua: &Lua, bytes: &[u8], limit: usize, offset: f64) -> Ret {
    if offset < 0.0 || offset as usize > bytes.len() {
        return fail(lua, "Start offset greater than input length.");
    }
    match mp_decode_many(lua, bytes, offset as usize, limit) {
        Ok((next, vals)) => {
            let next = if next >= bytes.len() {
                -1.0
            } else {
                next as f64
            };
            let mut out = vec![Value::Number(next)];
            out.extend(vals);
            ok(lua, out)
        }
        Err(MpErr::Msg(m)) => fail(lua, m),
        Err(MpErr::Lua(e)) => Err(e),
    }
}

fn mp_encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if out.len() > MAX_ENCODED {
        return Err("encoded MessagePack is too large".into());
    }
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_int(*i, out),
        Value::Number(n) => {
            if n.fract() == 0.0 && *n >= -9.2e18 && *n <= 1.8e19 && n.is_finite() {
                if *n >= 0.0 {
                    mp_uint(*n as u64, out);
                } else {
                    mp_int(*n as i64, out);
                }
            } else if (*n as f32) as f64 == *n || n.is_nan() {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.push(0xd9);
                out.push(len as u8);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if depth < MSGPACK_MAX_NESTING => {
            let mut max = 0usize;
            let mut count = 0usize;
            let mut is_array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair.map_err(|e| e.to_string())?;
                count += 1;
                match k {
                    Value::Number(n) if n >= 1.0 && n.fract() == 0.0 => max = max.max(n as usize),
                    Value::Integer(i) if i >= 1 => max = max.max(i as usize),
                    _ => is_array = false,
                }
            }
            if is_array && max == count {
                mp_len(count, 0x90, 0xdc, 0xdd, out);
                for i in 1..=count {
                    let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                    mp_encode(&item, depth + 1, out)?;
                }
            } else {
                mp_len(count, 0x80, 0xde, 0xdf, out);
                for pair in t.pairs::<Value, Value>() {
                    let (k, val) = pair.map_err(|e| e.to_string())?;
                    mp_encode(&k, depth + 1, out)?;
                    mp_encode(&val, depth + 1, out)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

fn mp_len(n: usize, fix: u8, m16: u8, m32: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(m16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn mp_uint(n: u64, out: &mut Vec<u8>) {
    if n < 128 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xcc, n as u8]);
    } else if n <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        return mp_uint(n as u64, out);
    }
    if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

enum MpErr {
    Msg(String),
    Lua(mlua::Error),
}

impl From<mlua::Error> for MpErr {
    fn from(e: mlua::Error) -> Self {
        MpErr::Lua(e)
    }
}

/// Decodes up to `limit` objects (0: all) from `pos`; returns the offset
/// after the last one.
fn mp_decode_many(
    lua: &Lua,
    b: &[u8],
    mut pos: usize,
    limit: usize,
) -> Result<(usize, Vec<Value>), MpErr> {
    let mut out = Vec::new();
    while pos < b.len() && (limit == 0 || out.len() < limit) {
        out.push(mp_decode(lua, b, &mut pos, 0)?);
    }
    Ok((pos, out))
}

fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], MpErr> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= b.len())
        .ok_or_else(|| MpErr::Msg("Missing bytes in input.".into()))?;
    let s = &b[*pos..end];
    *pos = end;
    Ok(s)
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

fn mp_decode(lua: &Lua, b: &[u8], pos: &mut usize, depth: usize) -> Result<Value, MpErr> {
    if depth > 1000 {
        return Err(MpErr::Msg("Bad data format in input.".into()));
    }
    let tag = take(b, pos, 1)?[0];
    let v = match tag {
        0x00..=0x7f => Value::Number(f64::from(tag)),
        0xe0..=0xff => Value::Number(f64::from(tag as i8)),
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xcc => Value::Number(be(take(b, pos, 1)?) as f64),
        0xcd => Value::Number(be(take(b, pos, 2)?) as f64),
        0xce => Value::Number(be(take(b, pos, 4)?) as f64),
        0xcf => Value::Number(be(take(b, pos, 8)?) as f64),
        0xd0 => Value::Number(f64::from(take(b, pos, 1)?[0] as i8)),
        0xd1 => Value::Number(f64::from(be(take(b, pos, 2)?) as u16 as i16)),
        0xd2 => Value::Number(f64::from(be(take(b, pos, 4)?) as u32 as i32)),
        0xd3 => Value::Number(be(take(b, pos, 8)?) as i64 as f64),
        0xca => Value::Number(f64::from(f32::from_bits(be(take(b, pos, 4)?) as u32))),
        0xcb => Value::Number(f64::from_bits(be(take(b, pos, 8)?))),
        0xa0..=0xbf => Value::String(lua.create_string(take(b, pos, usize::from(tag & 0x1f))?)?),
        0xd9 | 0xc4 => {
            let n = be(take(b, pos, 1)?) as usize;
            Value::String(lua.create_string(take(b, pos, n)?)?)
        }
        0xda | 0xc5 => {
            let n = be(take(b, pos, 2)?) as usize;
            Value::String(lua.create_string(take(b, pos, n)?)?)
        }
        0xdb | 0xc6 => {
            let n = be(take(b, pos, 4)?) as usize;
            Value::String(lua.create_string(take(b, pos, n)?)?)
        }
        0x90..=0x9f => mp_array(lua, b, pos, usize::from(tag & 0x0f), depth)?,
        0xdc => {
            let n = be(take(b, pos, 2)?) as usize;
            mp_array(lua, b, pos, n, depth)?
        }
        0xdd => {
            let n = be(take(b, pos, 4)?) as usize;
            mp_array(lua, b, pos, n, depth)?
        }
        0x80..=0x8f => mp_map(lua, b, pos, usize::from(tag & 0x0f), depth)?,
        0xde => {
            let n = be(take(b, pos, 2)?) as usize;
            mp_map(lua, b, pos, n, depth)?
        }
        0xdf => {
            let n = be(take(b, pos, 4)?) as usize;
            mp_map(lua, b, pos, n, depth)?
        }
        _ => return Err(MpErr::Msg("Bad data format in input.".into())),
    };
    Ok(v)
}

fn mp_array(lua: &Lua, b: &[u8], pos: &mut usize, n: usize, depth: usize) -> Result<Value, MpErr> {
    // Every element takes at least one byte: a count beyond the input is
    // malformed, not a reason to allocate.
    if n > b.len() - *pos {
        return Err(MpErr::Msg("Missing bytes in input.".into()));
    }
    let t = lua.create_table_with_capacity(n, 0)?;
    for i in 1..=n {
        let v = mp_decode(lua, b, pos, depth + 1)?;
        t.raw_set(i, v)?;
    }
    Ok(Value::Table(t))
}

fn mp_map(lua: &Lua, b: &[u8], pos: &mut usize, n: usize, depth: usize) -> Result<Value, MpErr> {
    if n > b.len() - *pos {
        return Err(MpErr::Msg("Missing bytes in input.".into()));
    }
    let t = lua.create_table_with_capacity(0, n)?;
    for _ in 0..n {
        let k = mp_decode(lua, b, pos, depth + 1)?;
        let v = mp_decode(lua, b, pos, depth + 1)?;
        if !k.is_nil() {
            t.raw_set(k, v)?;
        }
    }
    Ok(Value::Table(t))
}

// ---------------------------------------------------------------- struct

#[derive(Clone, Copy)]
enum Item {
    /// Signed or unsigned integer of n bytes.
    Int(usize, bool),
    Float,
    Double,
    /// Zero-terminated string.
    Zstr,
    /// Fixed-length chars (0: the whole string / previous number).
    Chars(usize),
    Pad,
}

struct Fmt<'a> {
    s: &'a [u8],
    pos: usize,
    little: bool,
    maxalign: usize,
}

impl Fmt<'_> {
    fn number(&mut self, default: usize) -> Result<usize, String> {
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        if start == self.pos {
            return Ok(default);
        }
        std::str::from_utf8(&self.s[start..self.pos])
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|&n| n <= 1 << 20)
            .ok_or_else(|| "format size too large".to_string())
    }

    /// The next data item (options like endianness are applied on the
    /// way); `None` at the end.
    fn next(&mut self) -> Result<Option<Item>, String> {
        while self.pos < self.s.len() {
            let c = self.s[self.pos];
            self.pos += 1;
            let item = match c {
                b' ' => continue,
                b'>' => {
                    self.little = false;
                    continue;
                }
                b'<' => {
                    self.little = true;
                    continue;
                }
                b'=' => {
                    self.little = cfg!(target_endian = "little");
                    continue;
                }
                b'!' => {
                    self.maxalign = self.number(8)?;
                    continue;
                }
                b'x' => Item::Pad,
                b'b' => Item::Int(1, true),
                b'B' => Item::Int(1, false),
                b'h' => Item::Int(2, true),
                b'H' => Item::Int(2, false),
                b'l' => Item::Int(8, true),
                b'L' => Item::Int(8, false),
                b'T' => Item::Int(8, false),
                b'i' | b'I' => {
                    let n = self.number(4)?;
                    if n == 0 || n > 8 {
                        return Err(format!("integral size {n} is larger than limit of 8"));
                    }
                    Item::Int(n, c == b'i')
                }
                b'f' => Item::Float,
                b'd' => Item::Double,
                b's' => Item::Zstr,
                b'c' => Item::Chars(self.number(1)?),
                other => {
                    return Err(format!(
                        "bad argument #1 (invalid format option '{}')",
                        other as char
                    ));
                }
            };
            return Ok(Some(item));
        }
        Ok(None)
    }

    fn align(&self, size: usize, total: usize) -> usize {
        let a = size.min(self.maxalign);
        if a <= 1 || !a.is_power_of_two() {
            return 0;
        }
        (a - (total & (a - 1))) & (a - 1)
    }
}

fn item_size(item: Item) -> usize {
    match item {
        Item::Int(n, _) => n,
        Item::Float => 4,
        Item::Double => 8,
        Item::Pad => 1,
        Item::Chars(n) => n,
        Item::Zstr => 0,
    }
}

fn struct_lib(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            let Some(Value::String(fmt)) = args.first() else {
                return fail(lua, "bad argument #1 to 'pack' (string expected)");
            };
            match struct_pack(&fmt.as_bytes(), &args[1..]) {
                Ok(out) => ok(lua, vec![Value::String(lua.create_string(&out)?)]),
                Err(e) => fail(lua, e),
            }
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, args: Variadic<Value>| {
            let (Some(Value::String(fmt)), Some(Value::String(data))) = (args.first(), args.get(1))
            else {
                return fail(lua, "bad argument to 'unpack' (string expected)");
            };
            let start = args.get(2).and_then(num).unwrap_or(1.0);
            match struct_unpack(lua, &fmt.as_bytes(), &data.as_bytes(), start) {
                Ok(Ok(vals)) => ok(lua, vals),
                Ok(Err(e)) => fail(lua, e),
                Err(e) => Err(e),
            }
        })?,
    )?;
    t.raw_set(
        "size",
        lua.create_function(|lua, fmt: Value| {
            let Value::String(fmt) = fmt else {
                return fail(lua, "bad argument #1 to 'size' (string expected)");
            };
            let bytes = fmt.as_bytes();
            let mut f = Fmt {
                s: &bytes,
                pos: 0,
                little: cfg!(target_endian = "little"),
                maxalign: 1,
            };
            let mut total = 0usize;
            loop {
                match f.next() {
                    Ok(None) => break,
                    Ok(Some(Item::Zstr)) => {
                        return fail(lua, "bad argument #1 (option 's' has no fixed size)")
                    }
                    Ok(Some(Item::Chars(0))) => {
                        return fail(lua, "bad argument #1 (option 'c0' has no fixed size)")
                    }
                    Ok(Some(item)) => {
                        let size = item_size(item);
                        if matches!(item, Item::Int(..) | Item::Float | Item::Double) {
                            total += f.align(size, total);
                        }
                        total += size;
                    }
                    Err(e) => return fail(lua, e),
                }
            }
            ok(lua, vec![Value::Number(total as f64)])
        })?,
    )?;
    Ok(t)
}

fn put_int(out: &mut Vec<u8>, v: u64, size: usize, little: bool) {
    let bytes = v.to_le_bytes();
    let mut chunk: Vec<u8> = bytes[..size.min(8)].to_vec();
    if !little {
        chunk.reverse();
    }
    out.extend_from_slice(&chunk);
}

fn struct_pack(fmt: &[u8], args: &[Value]) -> Result<Vec<u8>, String> {
    let mut f = Fmt {
        s: fmt,
        pos: 0,
        little: cfg!(target_endian = "little"),
        maxalign: 1,
    };
    let mut out = Vec::new();
    let mut arg = 0usize;
    let mut next_arg = |what: &str| -> Result<Value, String> {
        arg += 1;
        args.get(arg - 1).cloned().ok_or_else(|| {
            format!(
                "bad argument #{} to 'pack' ({what} expected, got no value)",
                arg + 1
            )
        })
    };
    while let Some(item) = f.next()? {
        if matches!(item, Item::Int(..) | Item::Float | Item::Double) {
            let pad = f.align(item_size(item), out.len());
            out.resize(out.len() + pad, 0);
        }
        match item {
            Item::Pad => out.push(0),
            Item::Int(size, signed) => {
                let v = next_arg("number")?;
                let n = num(&v).ok_or("bad argument to 'pack' (number expected)")?;
                // Two's complement of the truncated value; unsigned
                // formats take non-negative numbers beyond i64 as is.
                let bits = if signed || n < 0.0 {
                    n as i64 as u64
                } else {
                    n as u64
                };
                put_int(&mut out, bits, size, f.little);
            }
            Item::Float => {
                let n =
                    num(&next_arg("number")?).ok_or("bad argument to 'pack' (number expected)")?;
                let b = (n as f32).to_bits();
                put_int(&mut out, u64::from(b), 4, f.little);
            }
            Item::Double => {
                let n =
                    num(&next_arg("number")?).ok_or("bad argument to 'pack' (number expected)")?;
                put_int(&mut out, n.to_bits(), 8, f.little);
            }
            Item::Zstr | Item::Chars(_) => {
                let v = next_arg("string")?;
                let s: Vec<u8> = match &v {
                    Value::String(s) => s.as_bytes().to_vec(),
                    Value::Number(n) => super::engine::number_text(*n).into_bytes(),
                    _ => return Err("bad argument to 'pack' (string expected)".into()),
                };
                match item {
                    Item::Zstr => {
                        if s.contains(&0) {
                            return Err("string contains zeros".into());
                        }
                        out.extend_from_slice(&s);
                        out.push(0);
                    }
                    Item::Chars(0) => out.extend_from_slice(&s),
                    Item::Chars(n) => {
                        if s.len() < n {
                            return Err("string too short".into());
                        }
                        out.extend_from_slice(&s[..n]);
                    }
                    _ => {}
                }
            }
        }
        if out.len() > MAX_ENCODED {
            return Err("packed data is too large".into());
        }
    }
    Ok(out)
}

fn struct_unpack(
    lua: &Lua,
    fmt: &[u8],
    data: &[u8],
    start: f64,
) -> mlua::Result<Result<Vec<Value>, String>> {
    let mut f = Fmt {
        s: fmt,
        pos: 0,
        little: cfg!(target_endian = "little"),
        maxalign: 1,
    };
    if start < 1.0 {
        return Ok(Err("offset must be 1 or greater".into()));
    }
    let mut pos = start as usize - 1;
    let mut out = Vec::new();
    let mut last_num: Option<f64> = None;
    loop {
        let item = match f.next() {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(e) => return Ok(Err(e)),
        };
        if matches!(item, Item::Int(..) | Item::Float | Item::Double) {
            pos += f.align(item_size(item), pos);
        }
        let size = match item {
            Item::Chars(0) => match last_num.take() {
                Some(n) if n >= 0.0 => n as usize,
                _ => return Ok(Err("format 'c0' needs a previous size".into())),
            },
            Item::Zstr => match data.get(pos..).and_then(|d| d.iter().position(|&b| b == 0)) {
                Some(n) => n + 1,
                None => return Ok(Err("unfinished string in data".into())),
            },
            other => item_size(other),
        };
        let Some(chunk) = pos.checked_add(size).and_then(|e| data.get(pos..e)) else {
            return Ok(Err("bad argument #2 (data string too short)".into()));
        };
        pos += size;
        match item {
            Item::Pad => {}
            Item::Int(n, signed) => {
                let mut b = chunk.to_vec();
                if !f.little {
                    b.reverse();
                }
                let mut v = 0u64;
                for (i, byte) in b.iter().enumerate() {
                    v |= u64::from(*byte) << (8 * i);
                }
                let x = if signed && n < 8 {
                    let shift = 64 - 8 * n as u32;
                    (((v << shift) as i64) >> shift) as f64
                } else if signed {
                    v as i64 as f64
                } else {
                    v as f64
                };
                last_num = Some(x);
                out.push(Value::Number(x));
            }
            Item::Float | Item::Double => {
                let mut b = chunk.to_vec();
                if !f.little {
                    b.reverse();
                }
                let mut v = 0u64;
                for (i, byte) in b.iter().enumerate() {
                    v |= u64::from(*byte) << (8 * i);
                }
                let x = if matches!(item, Item::Float) {
                    f64::from(f32::from_bits(v as u32))
                } else {
                    f64::from_bits(v)
                };
                out.push(Value::Number(x));
            }
            Item::Zstr => out.push(Value::String(lua.create_string(&chunk[..size - 1])?)),
            Item::Chars(_) => out.push(Value::String(lua.create_string(chunk)?)),
        }
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_helpers() {
        assert_eq!(tobit(1.0), 1);
        assert_eq!(tobit(4294967295.0), -1);
        assert_eq!(tobit(2147483648.0), i32::MIN);
        assert_eq!(tohex(65535, Some(i32::MIN)), "0000FFFF");
        assert_eq!(tohex(-1, None), "ffffffff");
        assert_eq!(tohex(0x1234, Some(2)), "34");
    }

    #[test]
    fn msgpack_numbers() {
        let mut out = Vec::new();
        mp_encode(&Value::Number(0.1), 0, &mut out).expect("encode");
        assert_eq!(out, [0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]);
        out.clear();
        mp_encode(&Value::Number(-1099511627776.0), 0, &mut out).expect("encode");
        assert_eq!(out, [0xd3, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00]);
        out.clear();
        mp_encode(&Value::Number(-1.0), 0, &mut out).expect("encode");
        assert_eq!(out, [0xff]);
        out.clear();
        mp_encode(&Value::Number(300.0), 0, &mut out).expect("encode");
        assert_eq!(out, [0xcd, 0x01, 0x2c]);
    }

    #[test]
    fn struct_pack_formats() {
        let out = struct_pack(b"HH", &[Value::Number(1.0), Value::Number(2.0)]).expect("pack");
        assert_eq!(out, [1, 0, 2, 0]);
        let out = struct_pack(b">i2", &[Value::Number(-2.0)]).expect("pack");
        assert_eq!(out, [0xff, 0xfe]);
        assert!(struct_pack(b"q", &[]).is_err());
    }
}
