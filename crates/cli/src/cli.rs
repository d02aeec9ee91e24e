//! Command-line syntax of `elastickv-cli` (clap derive), plus the parsers for
//! its argument types (durations, addresses, keys in text or hex).

use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::output::decode_hex;

/// Exit status when `get` or `latest-ts` finds no such key.
pub const EXIT_NOT_FOUND: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "elastickv-cli",
    version,
    about = "Command-line client for an Elastickv node",
    after_help = "Keys and values are taken as UTF-8 text unless --hex is given. \
Output shows text as-is; bytes that are not printable UTF-8 are escaped (\\xNN), \
or everything is hex with --hex.\n\n\
Exit status: 0 success, 1 error (the gRPC code and message are printed), \
2 bad usage (including bad hex or address), 3 key not found (get, latest-ts)."
)]
pub struct Cli {
    /// Node to talk to, host:port, with or without http://.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:50051",
        env = "ELASTICKV_ADDRESS"
    )]
    pub address: String,

    /// Deadline for connecting and for the request: 500ms, 5s, 1m, or plain seconds.
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Keys and values are hex on input and output (for binary data).
    #[arg(long, global = true)]
    pub hex: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Write VALUE under KEY.
    Put { key: String, value: String },
    /// Read KEY (linearizable, or as of --ts).
    Get {
        key: String,
        /// Read as of this HLC timestamp; 0 reads the latest committed value.
        #[arg(long, default_value_t = 0)]
        ts: u64,
    },
    /// Delete KEY.
    Delete { key: String },
    /// List keys in [START, END); no END (or an empty one) scans to the end.
    Scan {
        start: String,
        end: Option<String>,
        /// Largest number of rows; 0 asks for the server's maximum.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(0..))]
        limit: i64,
        /// Return rows in descending key order (still from the same range).
        #[arg(long)]
        reverse: bool,
        /// Read as of this HLC timestamp; 0 reads the latest committed data.
        #[arg(long, default_value_t = 0)]
        ts: u64,
    },
    /// Commit timestamp of KEY's newest live version.
    LatestTs { key: String },
    /// Raft state of every group on the node.
    Status {
        /// Machine-readable JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Add a node as a non-voting learner.
    AddLearner {
        raft_id: String,
        /// The new node's gRPC address, host:port.
        #[arg(value_name = "ADDRESS")]
        raft_address: String,
        /// Group to change; 0 means every group on the node.
        #[arg(long, default_value_t = 0)]
        group: u64,
    },
    /// Promote a learner to voter.
    Promote {
        raft_id: String,
        /// Group to change; 0 means every group on the node.
        #[arg(long, default_value_t = 0)]
        group: u64,
    },
    /// Remove a node from the membership.
    Remove {
        raft_id: String,
        /// Group to change; 0 means every group on the node.
        #[arg(long, default_value_t = 0)]
        group: u64,
    },
    /// Ask RAFT_ID to take over leadership.
    TransferLeader {
        raft_id: String,
        /// Group to change; 0 means every group on the node.
        #[arg(long, default_value_t = 0)]
        group: u64,
    },
}

/// Parse `500ms`, `5s`, `2m` or a plain number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit_secs) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: use e.g. 500ms, 5s, 1m"))?;
    let secs = value * unit_secs;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration {s:?} must be positive"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// `host:port` or `http://host:port` to a URI tonic can dial.
pub fn normalize_address(address: &str) -> Result<String, String> {
    let a = address.trim().trim_end_matches('/');
    if a.is_empty() {
        return Err("address must not be empty".into());
    }
    if a.starts_with("https://") {
        return Err(format!(
            "{a}: TLS is not supported; Elastickv nodes serve plaintext gRPC (use http:// or host:port)"
        ));
    }
    let uri = if a.starts_with("http://") {
        a.to_owned()
    } else if a.contains("://") {
        return Err(format!("{a}: only http:// addresses are supported"));
    } else {
        format!("http://{a}")
    };
    // Validate now so a typo is a usage error, not a connection error.
    tonic::transport::Endpoint::from_shared(uri.clone())
        .map_err(|e| format!("invalid address {address:?}: {e}"))?;
    Ok(uri)
}

/// The bytes a key or value argument stands for.
pub fn arg_bytes(arg: &str, hex: bool) -> Result<Vec<u8>, String> {
    if hex {
        decode_hex(arg).map_err(|e| format!("{arg:?} is not valid hex: {e}"))
    } else {
        Ok(arg.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("elastickv-cli").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let cli = parse(&["get", "k"]).expect("parses");
        assert_eq!(cli.address, "127.0.0.1:50051");
        assert_eq!(cli.timeout, Duration::from_secs(5));
        assert!(!cli.hex);
        assert_eq!(
            cli.command,
            Command::Get {
                key: "k".into(),
                ts: 0
            }
        );
    }

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        let a = parse(&[
            "--address",
            "http://10.0.0.1:7000",
            "--hex",
            "put",
            "6b",
            "76",
        ])
        .expect("before");
        let b = parse(&[
            "put",
            "6b",
            "76",
            "--hex",
            "--address",
            "http://10.0.0.1:7000",
        ])
        .expect("after");
        for cli in [a, b] {
            assert!(cli.hex);
            assert_eq!(cli.address, "http://10.0.0.1:7000");
            assert_eq!(
                cli.command,
                Command::Put {
                    key: "6b".into(),
                    value: "76".into()
                }
            );
        }
    }

    #[test]
    fn scan_arguments() {
        let cli = parse(&["scan", "a"]).expect("minimal scan");
        assert_eq!(
            cli.command,
            Command::Scan {
                start: "a".into(),
                end: None,
                limit: 100,
                reverse: false,
                ts: 0
            }
        );
        let cli = parse(&["scan", "a", "z", "--limit", "5", "--reverse", "--ts", "99"])
            .expect("full scan");
        assert_eq!(
            cli.command,
            Command::Scan {
                start: "a".into(),
                end: Some("z".into()),
                limit: 5,
                reverse: true,
                ts: 99
            }
        );
        assert!(parse(&["scan", "a", "--limit", "-1"]).is_err());
        assert!(parse(&["scan"]).is_err(), "START is required");
    }

    #[test]
    fn admin_commands() {
        let cli = parse(&["add-learner", "n4", "127.0.0.1:50054", "--group", "2"]).expect("add");
        assert_eq!(
            cli.command,
            Command::AddLearner {
                raft_id: "n4".into(),
                raft_address: "127.0.0.1:50054".into(),
                group: 2
            }
        );
        // The positional ADDRESS must not be confused with the global --address.
        assert_eq!(cli.address, "127.0.0.1:50051");
        for (sub, want) in [
            (
                "promote",
                Command::Promote {
                    raft_id: "n4".into(),
                    group: 0,
                },
            ),
            (
                "remove",
                Command::Remove {
                    raft_id: "n4".into(),
                    group: 0,
                },
            ),
            (
                "transfer-leader",
                Command::TransferLeader {
                    raft_id: "n4".into(),
                    group: 0,
                },
            ),
        ] {
            assert_eq!(parse(&[sub, "n4"]).expect(sub).command, want);
        }
        assert_eq!(
            parse(&["status", "--json"]).expect("status").command,
            Command::Status { json: true }
        );
        assert_eq!(
            parse(&["latest-ts", "k"]).expect("latest-ts").command,
            Command::LatestTs { key: "k".into() }
        );
        assert!(
            parse(&["add-learner", "n4"]).is_err(),
            "ADDRESS is required"
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse(&["--timeout", "abc", "status"]).is_err());
        let cli = parse(&["status", "--timeout", "250ms"]).expect("timeout");
        assert_eq!(cli.timeout, Duration::from_millis(250));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            normalize_address("127.0.0.1:50051").as_deref(),
            Ok("http://127.0.0.1:50051")
        );
        assert_eq!(
            normalize_address("http://node1:50051/").as_deref(),
            Ok("http://node1:50051")
        );
        assert_eq!(
            normalize_address("[::1]:50051").as_deref(),
            Ok("http://[::1]:50051")
        );
        assert!(normalize_address("https://node1:50051").is_err());
        assert!(normalize_address("unix:///tmp/sock").is_err());
        assert!(normalize_address("").is_err());
        assert!(normalize_address("bad host:1").is_err());
    }

    #[test]
    fn key_arguments_in_text_or_hex() {
        assert_eq!(arg_bytes("héllo", false), Ok("héllo".as_bytes().to_vec()));
        assert_eq!(arg_bytes("00ff10", true), Ok(vec![0x00, 0xff, 0x10]));
        assert!(arg_bytes("0g", true).is_err());
        assert!(arg_bytes("abc", true).is_err());
    }
}
