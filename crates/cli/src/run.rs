//! Executes one parsed command against a node and says what to print.

use std::time::Duration;

use elastickv_proto::admin::admin_client::AdminClient;
use elastickv_proto::admin::{
    AddLearnerRequest, PromoteVoterRequest, RemoveNodeRequest, StatusRequest, TransferLeaderRequest,
};
use elastickv_proto::public::raw_kv_client::RawKvClient;
use elastickv_proto::public::{
    RawDeleteRequest, RawGetRequest, RawLatestCommitTsRequest, RawPutRequest, RawScanAtRequest,
};
use elastickv_types::limits::MAX_GRPC_MESSAGE_BYTES;
use tonic::transport::{Channel, Endpoint};

use crate::cli::{arg_bytes, normalize_address, Cli, Command, EXIT_NOT_FOUND};
use crate::output;

/// Why a command failed; each maps to a line on stderr and exit status 1
/// (usage problems found after parsing are reported the same way).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {address}: {}", output::error_chain(.source))]
    Connect {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// Boxed: a `Status` is large, and this error travels through every
    /// `Result` in the CLI.
    #[error("{}", output::rpc_error(.0))]
    Rpc(Box<tonic::Status>),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Rpc(Box::new(status))
    }
}

impl CliError {
    /// Process exit status: 2 for usage errors, as clap uses; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Connect { .. } | CliError::Rpc(_) | CliError::Json(_) => 1,
        }
    }
}

/// What a successful command prints, and its exit status.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Printed to stdout as-is (already newline-terminated where needed).
    pub stdout: String,
    /// Printed to stderr (e.g. "(not found)").
    pub stderr: String,
    pub exit: u8,
}

impl Outcome {
    fn line(s: impl Into<String>) -> Self {
        let mut stdout = s.into();
        stdout.push('\n');
        Outcome {
            stdout,
            stderr: String::new(),
            exit: 0,
        }
    }

    fn text(stdout: String) -> Self {
        Outcome {
            stdout,
            stderr: String::new(),
            exit: 0,
        }
    }

    fn not_found() -> Self {
        Outcome {
            stdout: String::new(),
            stderr: "(not found)\n".into(),
            exit: EXIT_NOT_FOUND,
        }
    }
}

async fn connect(address: &str, timeout: Duration) -> Result<Channel, CliError> {
    let uri = normalize_address(address).map_err(CliError::Usage)?;
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|e| CliError::Usage(format!("invalid address {address:?}: {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout);
    endpoint
        .connect()
        .await
        .map_err(|source| CliError::Connect {
            address: uri,
            source,
        })
}

/// A request carrying the deadline, so the server can give up too.
fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    req
}

/// Run `cli.command` against `cli.address`.
pub async fn run(cli: Cli) -> Result<Outcome, CliError> {
    let Cli {
        address,
        timeout,
        hex,
        command,
    } = cli;
    // Decode arguments before dialing: a bad hex key should not wait on a
    // network timeout to be reported.
    let bytes = |s: &str| arg_bytes(s, hex).map_err(CliError::Usage);
    let prepared = Prepared::new(command, &bytes)?;
    let channel = connect(&address, timeout).await?;
    // Scans can return up to the server's message limit; tonic's default
    // client limit is 4 MiB.
    let mut kv =
        RawKvClient::new(channel.clone()).max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);
    let mut admin = AdminClient::new(channel).max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);

    Ok(match prepared {
        Prepared::Put(m) => {
            let r = kv.raw_put(request(m, timeout)).await?.into_inner();
            Outcome::line(output::write_result(r.commit_index))
        }
        Prepared::Get(m) => {
            let r = kv.raw_get(request(m, timeout)).await?.into_inner();
            match output::get_result(&r, hex) {
                Some(v) => Outcome::line(v),
                None => Outcome::not_found(),
            }
        }
        Prepared::Delete(m) => {
            let r = kv.raw_delete(request(m, timeout)).await?.into_inner();
            Outcome::line(output::write_result(r.commit_index))
        }
        Prepared::Scan(m) => {
            let r = kv.raw_scan_at(request(m, timeout)).await?.into_inner();
            Outcome::text(output::scan_result(&r, hex))
        }
        Prepared::LatestTs(m) => {
            let r = kv
                .raw_latest_commit_ts(request(m, timeout))
                .await?
                .into_inner();
            match output::latest_ts_result(&r) {
                Some(v) => Outcome::line(v),
                None => Outcome::not_found(),
            }
        }
        Prepared::Status { json } => {
            let s = admin
                .status(request(StatusRequest {}, timeout))
                .await?
                .into_inner();
            if json {
                Outcome::line(serde_json::to_string_pretty(&output::status_json(&s))?)
            } else {
                Outcome::text(output::status_table(&s))
            }
        }
        Prepared::AddLearner(m) => {
            let r = admin.add_learner(request(m, timeout)).await?.into_inner();
            Outcome::line(output::membership_result(&r))
        }
        Prepared::Promote(m) => {
            let r = admin.promote_voter(request(m, timeout)).await?.into_inner();
            Outcome::line(output::membership_result(&r))
        }
        Prepared::Remove(m) => {
            let r = admin.remove_node(request(m, timeout)).await?.into_inner();
            Outcome::line(output::membership_result(&r))
        }
        Prepared::TransferLeader(m) => {
            let r = admin
                .transfer_leader(request(m, timeout))
                .await?
                .into_inner();
            Outcome::line(output::membership_result(&r))
        }
    })
}

/// A command turned into its request message, with arguments decoded.
#[derive(Debug, PartialEq)]
enum Prepared {
    Put(RawPutRequest),
    Get(RawGetRequest),
    Delete(RawDeleteRequest),
    Scan(RawScanAtRequest),
    LatestTs(RawLatestCommitTsRequest),
    Status { json: bool },
    AddLearner(AddLearnerRequest),
    Promote(PromoteVoterRequest),
    Remove(RemoveNodeRequest),
    TransferLeader(TransferLeaderRequest),
}

impl Prepared {
    fn new(
        command: Command,
        bytes: &impl Fn(&str) -> Result<Vec<u8>, CliError>,
    ) -> Result<Self, CliError> {
        Ok(match command {
            Command::Put { key, value } => Prepared::Put(RawPutRequest {
                key: bytes(&key)?,
                value: bytes(&value)?,
            }),
            Command::Get { key, ts } => Prepared::Get(RawGetRequest {
                key: bytes(&key)?,
                ts,
            }),
            Command::Delete { key } => Prepared::Delete(RawDeleteRequest { key: bytes(&key)? }),
            Command::Scan {
                start,
                end,
                limit,
                reverse,
                ts,
            } => Prepared::Scan(RawScanAtRequest {
                start_key: bytes(&start)?,
                // No END and an empty END both mean "to the end".
                end_key: end.as_deref().map(bytes).transpose()?.unwrap_or_default(),
                limit,
                ts,
                reverse,
            }),
            Command::LatestTs { key } => {
                Prepared::LatestTs(RawLatestCommitTsRequest { key: bytes(&key)? })
            }
            Command::Status { json } => Prepared::Status { json },
            Command::AddLearner {
                raft_id,
                raft_address,
                group,
            } => Prepared::AddLearner(AddLearnerRequest {
                raft_id,
                address: raft_address,
                group_id: group,
            }),
            Command::Promote { raft_id, group } => Prepared::Promote(PromoteVoterRequest {
                raft_id,
                group_id: group,
            }),
            Command::Remove { raft_id, group } => Prepared::Remove(RemoveNodeRequest {
                raft_id,
                group_id: group,
            }),
            Command::TransferLeader { raft_id, group } => {
                Prepared::TransferLeader(TransferLeaderRequest {
                    raft_id,
                    group_id: group,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn prepare(args: &[&str]) -> Result<Prepared, CliError> {
        let cli = Cli::try_parse_from(std::iter::once("elastickv-cli").chain(args.iter().copied()))
            .expect("parses");
        let hex = cli.hex;
        Prepared::new(cli.command, &|s: &str| {
            arg_bytes(s, hex).map_err(CliError::Usage)
        })
    }

    #[test]
    fn commands_become_requests() {
        assert_eq!(
            prepare(&["--hex", "put", "00ff", "0a"]).expect("put"),
            Prepared::Put(RawPutRequest {
                key: vec![0, 0xff],
                value: vec![0x0a]
            })
        );
        assert_eq!(
            prepare(&["scan", "a", "--limit", "0", "--reverse"]).expect("scan"),
            Prepared::Scan(RawScanAtRequest {
                start_key: b"a".to_vec(),
                end_key: Vec::new(),
                limit: 0,
                ts: 0,
                reverse: true,
            })
        );
        assert_eq!(
            prepare(&["add-learner", "n4", "127.0.0.1:50054", "--group", "3"]).expect("add"),
            Prepared::AddLearner(AddLearnerRequest {
                raft_id: "n4".into(),
                address: "127.0.0.1:50054".into(),
                group_id: 3,
            })
        );
    }

    #[test]
    fn bad_hex_is_a_usage_error_before_any_network() {
        let err = prepare(&["--hex", "get", "xyz"]).expect_err("bad hex");
        assert!(matches!(err, CliError::Usage(_)), "{err:?}");
        assert!(err.to_string().contains("not valid hex"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[tokio::test]
    async fn unreachable_node_reports_a_connect_error() {
        // Bind and drop a listener so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let cli = Cli::try_parse_from([
            "elastickv-cli",
            "--address",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "2s",
            "status",
        ])
        .expect("parses");
        let err = run(cli).await.expect_err("nothing listens there");
        assert!(matches!(err, CliError::Connect { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("cannot connect to http://127.0.0.1:"),
            "{err}"
        );
    }

    #[test]
    fn rpc_errors_print_code_and_message() {
        let err = CliError::from(tonic::Status::invalid_argument("key must not be empty"));
        assert_eq!(
            err.to_string(),
            "INVALID_ARGUMENT (3): key must not be empty"
        );
    }
}
