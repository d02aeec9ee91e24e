//! Property tests: the parsers never panic on arbitrary bytes (in any
//! chunking), and encode → parse round-trips every frame and every request.

use bytes::{Bytes, BytesMut};
use elastickv_api_redis::resp::{
    check_frame, parse_frame, split_inline_args, Limits, RequestDecoder,
};
use elastickv_api_redis::{Frame, Protocol};
use proptest::prelude::*;

fn line_bytes() -> impl Strategy<Value = Bytes> {
    // Simple strings and errors cannot carry CR or LF.
    proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..16,
    )
    .prop_map(Bytes::from)
}

fn any_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from)
}

/// Frames that survive a RESP3 round trip (NullArray is `_` in RESP3, so it
/// parses back as Null and is left out; doubles exclude NaN).
fn resp3_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_bytes().prop_map(Frame::Simple),
        line_bytes().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        any_bytes().prop_map(Frame::Bulk),
        Just(Frame::Null),
        any::<f64>()
            .prop_filter("not NaN", |d| !d.is_nan())
            .prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        ("-?[1-9][0-9]{0,40}").prop_map(|s| Frame::BigNumber(Bytes::from(s))),
        (any::<[u8; 3]>(), any_bytes()).prop_map(|(format, data)| Frame::Verbatim { format, data }),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// The RESP2-native subset, which round-trips under RESP2.
fn resp2_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_bytes().prop_map(Frame::Simple),
        line_bytes().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        any_bytes().prop_map(Frame::Bulk),
        Just(Frame::Null),
        Just(Frame::NullArray),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(Frame::Array)
    })
}

fn encode_request(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Feeds `input` to a decoder in chunks of the given sizes; returns the
/// commands and whether an error occurred.
fn decode_chunked(input: &[u8], chunks: &[usize], limits: Limits) -> (Vec<Vec<Bytes>>, bool) {
    let mut d = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut sizes = chunks.iter().cycle();
    while pos < input.len() {
        let n = (*sizes.next().unwrap_or(&1)).max(1).min(input.len() - pos);
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        loop {
            match d.decode(&mut buf) {
                Ok(Some(args)) => out.push(args),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fn small_limits() -> Limits {
    Limits {
        max_bulk_len: 4096,
        max_inline_len: 512,
        max_multibulk_len: 64,
        max_depth: 8,
        ..Limits::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn request_decoder_never_panics(input in proptest::collection::vec(any::<u8>(), 0..2048),
                                    chunks in proptest::collection::vec(1usize..64, 1..8)) {
        let _ = decode_chunked(&input, &chunks, small_limits());
        let _ = decode_chunked(&input, &chunks, Limits::default());
    }

    #[test]
    fn request_decoder_never_panics_on_resp_like_input(
        parts in proptest::collection::vec(prop_oneof![
            Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()), Just(b"-1".to_vec()),
            Just(b"0".to_vec()), Just(b"3".to_vec()), Just(b"99999999999".to_vec()), Just(b"abc".to_vec()),
            Just(b"\"".to_vec()), Just(b"'".to_vec()), Just(b"\\x4".to_vec()), Just(b" ".to_vec()), Just(b"\n".to_vec()),
        ], 0..64),
        chunks in proptest::collection::vec(1usize..16, 1..4)) {
        let input: Vec<u8> = parts.concat();
        let _ = decode_chunked(&input, &chunks, small_limits());
    }

    #[test]
    fn frame_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let limits = small_limits();
        let checked = check_frame(&input, &limits);
        let parsed = parse_frame(&input, &limits);
        // The cheap check and the full parse always agree.
        match (checked, parsed) {
            (Ok(Some(n)), Ok(Some((_, m)))) => prop_assert_eq!(n, m),
            (Ok(None), Ok(None)) => {}
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "check {:?} vs parse {:?}", a, b.map(|o| o.map(|x| x.1))),
        }
    }

    #[test]
    fn resp3_roundtrip(frame in resp3_frame()) {
        let bytes = frame.to_bytes(Protocol::Resp3);
        let (parsed, len) = parse_frame(&bytes, &Limits::default()).expect("valid").expect("complete");
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(parsed, frame);
        // Every strict prefix is incomplete, never an error.
        for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            if cut < bytes.len() {
                prop_assert_eq!(check_frame(&bytes[..cut], &Limits::default()), Ok(None));
            }
        }
    }

    #[test]
    fn resp2_roundtrip(frame in resp2_frame()) {
        let bytes = frame.to_bytes(Protocol::Resp2);
        let (parsed, len) = parse_frame(&bytes, &Limits::default()).expect("valid").expect("complete");
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(parsed, frame);
    }

    #[test]
    fn request_roundtrip(cmds in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8), 1..8),
                         chunks in proptest::collection::vec(1usize..32, 1..6)) {
        let mut input = Vec::new();
        for c in &cmds {
            input.extend(encode_request(c));
        }
        let (out, err) = decode_chunked(&input, &chunks, Limits::default());
        prop_assert!(!err);
        let expected: Vec<Vec<Bytes>> = cmds.iter().map(|c| c.iter().map(|a| Bytes::copy_from_slice(a)).collect()).collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn inline_quoting_roundtrip(args in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..20), 1..6)) {
        // Quote every argument Redis-style; splitting must give it back.
        let mut line = Vec::new();
        for a in &args {
            line.push(b'"');
            for &c in a {
                line.extend_from_slice(format!("\\x{c:02x}").as_bytes());
            }
            line.extend_from_slice(b"\" ");
        }
        prop_assert_eq!(split_inline_args(&line), Some(args));
    }
}
