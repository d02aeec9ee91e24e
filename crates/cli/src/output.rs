//! Everything `elastickv-cli` prints: byte rendering (text, escaped or hex),
//! per-command result lines, the status tables and their JSON twin, and the
//! wording of errors. Pure functions, so they are tested without a server.

use std::fmt::Write as _;

use elastickv_proto::admin::{MembershipResponse, StatusResponse};
use elastickv_proto::public::{RawGetResponse, RawLatestCommitTsResponse, RawScanAtResponse};
use elastickv_types::hlc::{logical, physical_ms};
use serde_json::{json, Value};
use tonic::Code;

/// Lower-case hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Why a hex argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("odd number of digits")]
    OddLength,
    #[error("{0:?} is not a hex digit")]
    BadDigit(char),
}

/// Decode hex (either case, optional `0x` prefix).
pub fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() % 2 != 0 {
        return Err(HexError::OddLength);
    }
    let digit = |c: char| c.to_digit(16).ok_or(HexError::BadDigit(c));
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(2)
        .map(|pair| Ok(((digit(pair[0])? << 4) | digit(pair[1])?) as u8))
        .collect()
}

/// Show bytes to a person: hex if asked; text if it is printable UTF-8;
/// otherwise with non-printable bytes escaped, so binary data and control
/// characters can neither garble the terminal nor break the line layout.
pub fn render(bytes: &[u8], hex: bool) -> String {
    if hex {
        return encode_hex(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => bytes.escape_ascii().to_string(),
    }
}

/// `put`/`delete` result.
pub fn write_result(commit_index: u64) -> String {
    format!("OK (commit index {commit_index})")
}

/// `get` result: the value, or `None` when the key does not exist.
pub fn get_result(resp: &RawGetResponse, hex: bool) -> Option<String> {
    resp.exists.then(|| render(&resp.value, hex))
}

/// `latest-ts` result, with the HLC decomposed for people.
pub fn latest_ts_result(resp: &RawLatestCommitTsResponse) -> Option<String> {
    resp.exists.then(|| describe_ts(resp.ts))
}

fn describe_ts(ts: u64) -> String {
    format!(
        "{ts} (physical {} ms, logical {})",
        physical_ms(ts),
        logical(ts)
    )
}

/// `scan` result: one `key<TAB>value` line per row.
pub fn scan_result(resp: &RawScanAtResponse, hex: bool) -> String {
    resp.kv
        .iter()
        .map(|p| format!("{}\t{}\n", render(&p.key, hex), render(&p.value, hex)))
        .collect()
}

/// Membership change result.
pub fn membership_result(resp: &MembershipResponse) -> String {
    if resp.message.is_empty() {
        let groups: Vec<String> = resp.groups.iter().map(u64::to_string).collect();
        format!("OK (groups {})", groups.join(", "))
    } else {
        format!("OK: {}", resp.message)
    }
}

/// Render rows as aligned columns; `right[i]` right-aligns column i.
fn table(header: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths[i];
            let last = i + 1 == cells.len();
            let padded = if right.get(i).copied().unwrap_or(false) {
                format!("{cell:>w$}")
            } else if last {
                // No trailing spaces on the last column.
                cell.to_string()
            } else {
                format!("{cell:<w$}")
            };
            out.push_str(&padded);
            if !last {
                out.push_str("  ");
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `status` as tables: one row per group, then one row per member.
pub fn status_table(s: &StatusResponse) -> String {
    let mut out = format!(
        "node {} at {}, HLC {}\n",
        or_dash(&s.raft_id),
        or_dash(&s.address),
        describe_ts(s.hlc_now)
    );
    if s.groups.is_empty() {
        out.push_str("\n(no groups hosted on this node)\n");
        return out;
    }
    let groups: Vec<Vec<String>> = s
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group_id.to_string(),
                or_dash(&g.state).to_owned(),
                or_dash(&g.leader).to_owned(),
                g.term.to_string(),
                g.last_log_index.to_string(),
                g.commit_index.to_string(),
                g.applied_index.to_string(),
                g.snapshot_index.to_string(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &[
            "GROUP", "STATE", "LEADER", "TERM", "LAST LOG", "COMMIT", "APPLIED", "SNAPSHOT",
        ],
        &[true, false, false, true, true, true, true, true],
        &groups,
    ));
    let members: Vec<Vec<String>> = s
        .groups
        .iter()
        .flat_map(|g| {
            g.members.iter().map(|m| {
                vec![
                    g.group_id.to_string(),
                    m.raft_id.clone(),
                    if m.voter { "voter" } else { "learner" }.to_owned(),
                    or_dash(&m.address).to_owned(),
                ]
            })
        })
        .collect();
    if !members.is_empty() {
        out.push('\n');
        out.push_str(&table(
            &["GROUP", "MEMBER", "ROLE", "ADDRESS"],
            &[true],
            &members,
        ));
    }
    out
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `status --json`: every field, leader `null` when unknown.
pub fn status_json(s: &StatusResponse) -> Value {
    json!({
        "raft_id": s.raft_id,
        "address": s.address,
        "hlc_now": s.hlc_now,
        "groups": s.groups.iter().map(|g| json!({
            "group_id": g.group_id,
            "leader": (!g.leader.is_empty()).then_some(&g.leader),
            "term": g.term,
            "state": g.state,
            "last_log_index": g.last_log_index,
            "commit_index": g.commit_index,
            "applied_index": g.applied_index,
            "snapshot_index": g.snapshot_index,
            "members": g.members.iter().map(|m| json!({
                "raft_id": m.raft_id,
                "address": m.address,
                "voter": m.voter,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The canonical gRPC name of a status code, as grpcurl and the docs spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One-line description of a failed RPC.
pub fn rpc_error(status: &tonic::Status) -> String {
    let code = status.code();
    let message = if status.message().is_empty() {
        code.description()
    } else {
        status.message()
    };
    format!("{} ({}): {message}", code_name(code), code as i32)
}

/// An error and its causes on one line (`a: b: c`).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        // Some layers repeat their source's text; say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use elastickv_proto::admin::{GroupStatus, Member};
    use elastickv_proto::public::RawKvPair;

    #[test]
    fn hex_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_hex(&encode_hex(&bytes)), Ok(bytes));
        assert_eq!(decode_hex("0xDEADbeef"), Ok(vec![0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(decode_hex(""), Ok(vec![]));
        assert_eq!(decode_hex("abc"), Err(HexError::OddLength));
        assert_eq!(decode_hex("zz"), Err(HexError::BadDigit('z')));
        assert_eq!(decode_hex("éé"), Err(HexError::BadDigit('é')));
    }

    #[test]
    fn rendering_text_binary_and_hex() {
        assert_eq!(render("héllo wörld".as_bytes(), false), "héllo wörld");
        assert_eq!(render(b"a\tb\nc", false), "a\\tb\\nc");
        assert_eq!(render(b"\xff\x00k", false), "\\xff\\x00k");
        assert_eq!(render(b"\xff\x00k", true), "ff006b");
        assert_eq!(render(b"", false), "");
    }

    #[test]
    fn get_and_latest_ts_distinguish_missing_from_empty() {
        let found_empty = RawGetResponse {
            read_at_index: 3,
            value: Vec::new(),
            exists: true,
        };
        assert_eq!(get_result(&found_empty, false), Some(String::new()));
        let missing = RawGetResponse::default();
        assert_eq!(get_result(&missing, false), None);

        let ts = RawLatestCommitTsResponse {
            ts: (1_700_000_000_000 << 16) | 7,
            exists: true,
        };
        assert_eq!(
            latest_ts_result(&ts).as_deref(),
            Some("111411200000000007 (physical 1700000000000 ms, logical 7)")
        );
        assert_eq!(
            latest_ts_result(&RawLatestCommitTsResponse::default()),
            None
        );
    }

    #[test]
    fn scan_lines() {
        let resp = RawScanAtResponse {
            kv: vec![
                RawKvPair {
                    key: b"a".to_vec(),
                    value: b"1".to_vec(),
                },
                RawKvPair {
                    key: b"b\xff".to_vec(),
                    value: b"x\ny".to_vec(),
                },
            ],
        };
        assert_eq!(scan_result(&resp, false), "a\t1\nb\\xff\tx\\ny\n");
        assert_eq!(scan_result(&resp, true), "61\t31\n62ff\t780a79\n");
        assert_eq!(scan_result(&RawScanAtResponse::default(), false), "");
    }

    fn sample_status() -> StatusResponse {
        StatusResponse {
            raft_id: "n1".into(),
            address: "127.0.0.1:50051".into(),
            hlc_now: (1_700_000_000_000 << 16) | 2,
            groups: vec![
                GroupStatus {
                    group_id: 1,
                    leader: "n1".into(),
                    term: 3,
                    state: "Leader".into(),
                    last_log_index: 1200,
                    commit_index: 1199,
                    applied_index: 1198,
                    snapshot_index: 1000,
                    members: vec![
                        Member {
                            raft_id: "n1".into(),
                            address: "127.0.0.1:50051".into(),
                            voter: true,
                        },
                        Member {
                            raft_id: "n2".into(),
                            address: "127.0.0.1:50052".into(),
                            voter: false,
                        },
                    ],
                },
                GroupStatus {
                    group_id: 2,
                    leader: String::new(),
                    term: 12,
                    state: "Candidate".into(),
                    last_log_index: 5,
                    commit_index: 4,
                    applied_index: 4,
                    snapshot_index: 0,
                    members: vec![],
                },
            ],
        }
    }

    #[test]
    fn status_tables() {
        let want = "\
node n1 at 127.0.0.1:50051, HLC 111411200000000002 (physical 1700000000000 ms, logical 2)

GROUP  STATE      LEADER  TERM  LAST LOG  COMMIT  APPLIED  SNAPSHOT
    1  Leader     n1         3      1200    1199     1198      1000
    2  Candidate  -         12         5       4        4         0

GROUP  MEMBER  ROLE     ADDRESS
    1  n1      voter    127.0.0.1:50051
    1  n2      learner  127.0.0.1:50052
";
        assert_eq!(status_table(&sample_status()), want);
    }

    #[test]
    fn status_with_no_groups() {
        let s = StatusResponse {
            raft_id: "n9".into(),
            ..Default::default()
        };
        assert!(status_table(&s).contains("(no groups hosted on this node)"));
    }

    #[test]
    fn status_json_has_every_field() {
        let v = status_json(&sample_status());
        assert_eq!(v["raft_id"], "n1");
        assert_eq!(v["groups"][0]["leader"], "n1");
        assert_eq!(v["groups"][1]["leader"], Value::Null);
        assert_eq!(v["groups"][0]["snapshot_index"], 1000);
        assert_eq!(v["groups"][0]["members"][1]["voter"], false);
        assert_eq!(v["groups"][0]["members"][1]["address"], "127.0.0.1:50052");
    }

    #[test]
    fn membership_lines() {
        let r = MembershipResponse {
            groups: vec![1, 2],
            message: "promoted n2 in group(s) [1, 2]".into(),
        };
        assert_eq!(membership_result(&r), "OK: promoted n2 in group(s) [1, 2]");
        let r = MembershipResponse {
            groups: vec![3],
            message: String::new(),
        };
        assert_eq!(membership_result(&r), "OK (groups 3)");
        assert_eq!(write_result(42), "OK (commit index 42)");
    }

    #[test]
    fn rpc_errors_name_code_and_message() {
        let s = tonic::Status::unavailable("no leader for group 1");
        assert_eq!(rpc_error(&s), "UNAVAILABLE (14): no leader for group 1");
        let s = tonic::Status::new(Code::DeadlineExceeded, "");
        assert!(rpc_error(&s).starts_with("DEADLINE_EXCEEDED (4): "));
    }
}
