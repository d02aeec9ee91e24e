//! Server commands: INFO, CONFIG GET/SET/RESETSTAT/REWRITE, DBSIZE, and
//! the connection commands that can appear inside MULTI (PING, ECHO,
//! TIME, SELECT).
//!
//! INFO reports this node: identity and uptime, client and command
//! counters, and the keyspace (a paged walk over every key, so O(keys)).
//! Memory, persistence and replication fields are present with Redis's
//! names and neutral values, because clients and tools parse them.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::db::{CmdResult, Ctx, ExecError};
use crate::frame::Frame;
use crate::procstat;

use super::keyspace;

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Sections INFO without arguments (or `default`) leaves out.
const NOT_DEFAULT: &[&str] = &["commandstats"];

/// INFO [section ...]
pub async fn info(cx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let mut wanted: Vec<String> = argv[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let everything = wanted.iter().any(|w| w == "all" || w == "everything");
    if everything {
        wanted = SECTIONS.iter().map(|s| s.to_string()).collect();
    } else if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted.extend(
            SECTIONS
                .iter()
                .filter(|s| !NOT_DEFAULT.contains(s))
                .map(|s| s.to_string()),
        );
    }
    let sh = cx.shared;
    let uptime = sh.started.elapsed().as_secs();
    let stats = &sh.stats;
    let mut out = String::new();
    let mut first = true;
    for section in SECTIONS {
        if !wanted.iter().any(|w| w == section) {
            continue;
        }
        if !first {
            out.push_str("\r\n");
        }
        first = false;
        let mut title = section.to_string();
        if let Some(c) = title.get_mut(0..1) {
            c.make_ascii_uppercase();
        }
        if *section == "cpu" {
            title = "CPU".into();
        }
        let _ = write!(out, "# {title}\r\n");
        match *section {
            "server" => {
                let _ = write!(
                    out,
                    "redis_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:10\r\nconfigured_hz:10\r\nlru_clock:0\r\nexecutable:elastickv\r\nconfig_file:\r\nio_threads_active:0\r\nelastickv:1\r\n",
                    sh.version,
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::process::id(),
                    sh.run_id,
                    sh.port,
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_micros())
                        .unwrap_or(0),
                    uptime,
                    uptime / 86400,
                );
            }
            "clients" => {
                let maxclients = sh
                    .config()
                    .value("maxclients")
                    .unwrap_or("10000")
                    .to_string();
                let _ = write!(
                    out,
                    "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\n",
                    stats.connected_clients.load(Ordering::Relaxed),
                    maxclients,
                    stats.blocked_clients.load(Ordering::Relaxed),
                    stats.blocked_clients.load(Ordering::Relaxed),
                );
            }
            "memory" => {
                // One guard: the table's mutex is not reentrant.
                let (maxmemory, policy) = {
                    let cfg = sh.config();
                    (
                        cfg.value("maxmemory").unwrap_or("0").to_string(),
                        cfg.value("maxmemory-policy")
                            .unwrap_or("noeviction")
                            .to_string(),
                    )
                };
                // The allocator's own total is not exposed: the resident
                // set stands for used memory (it includes code and
                // allocator slack, so it is an upper bound).
                let u = procstat::usage();
                let human = procstat::bytes_to_human;
                let _ = write!(
                    out,
                    "used_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_lua:0\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_fragmentation_ratio:1.00\r\nmem_allocator:mimalloc\r\nlazyfree_pending_objects:0\r\nnumber_of_cached_scripts:{}\r\n",
                    human(u.rss_bytes),
                    human(u.rss_bytes),
                    human(u.peak_rss_bytes),
                    maxmemory,
                    human(maxmemory.parse().unwrap_or(0)),
                    policy,
                    cx.shared.scripts.cached_count(),
                    rss = u.rss_bytes,
                    peak = u.peak_rss_bytes,
                );
            }
            "persistence" => {
                let start = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
                    .saturating_sub(uptime);
                let _ = write!(
                    out,
                    "loading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\nrdb_changes_since_last_save:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:{start}\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_bgrewrite_status:ok\r\naof_last_write_status:ok\r\n",
                );
            }
            "stats" => {
                let (ops, in_kbps, out_kbps) = stats.rates();
                let (channels, patterns, shards) = sh.hub.counts();
                let _ = write!(
                    out,
                    "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ninstantaneous_input_kbps:{in_kbps:.2}\r\ninstantaneous_output_kbps:{out_kbps:.2}\r\nrejected_connections:{}\r\nsync_full:0\r\nsync_partial_ok:0\r\nsync_partial_err:0\r\nexpired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\ntotal_error_replies:{}\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\n",
                    stats.total_connections.load(Ordering::Relaxed),
                    stats.total_commands.load(Ordering::Relaxed),
                    stats.io.net_input_bytes.load(Ordering::Relaxed),
                    stats.io.net_output_bytes.load(Ordering::Relaxed),
                    stats.rejected_connections.load(Ordering::Relaxed),
                    sh.expired_keys.load(Ordering::Relaxed),
                    sh.keyspace_hits.load(Ordering::Relaxed),
                    sh.keyspace_misses.load(Ordering::Relaxed),
                    channels,
                    patterns,
                    shards,
                    stats.total_error_replies.load(Ordering::Relaxed),
                    stats.io.reads_processed.load(Ordering::Relaxed),
                    stats.io.writes_processed.load(Ordering::Relaxed),
                );
            }
            "replication" => {
                let _ = write!(
                    out,
                    "role:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
                    sh.run_id,
                );
            }
            "cpu" => {
                let u = procstat::usage();
                let _ = write!(
                    out,
                    "used_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n",
                    u.sys_secs, u.user_secs,
                );
            }
            "cluster" => out.push_str("cluster_enabled:0\r\n"),
            "commandstats" => {
                let counters = stats.commands.lock().map(|m| m.clone()).unwrap_or_default();
                for (name, c) in counters {
                    let per_call = if c.calls == 0 {
                        0.0
                    } else {
                        c.usec as f64 / c.calls as f64
                    };
                    let _ = write!(
                        out,
                        "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                        name,
                        c.calls,
                        c.usec,
                        per_call,
                        c.rejected_calls,
                        c.failed_calls
                    );
                }
            }
            "errorstats" => {
                let errors = stats.errors.lock().map(|m| m.clone()).unwrap_or_default();
                for (code, n) in errors {
                    let _ = write!(out, "errorstat_{code}:count={n}\r\n");
                }
            }
            "keyspace" => {
                let selected = cx.db;
                for db in 0..keyspace::DATABASES as u8 {
                    cx.db = db;
                    let counted = keyspace::dbsize(cx).await;
                    cx.db = selected;
                    let (keys, expires) = counted?;
                    if keys > 0 {
                        let _ = write!(out, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Frame::Verbatim {
        format: *b"txt",
        data: Bytes::from(out),
    })
}

/// CONFIG GET/SET/RESETSTAT/REWRITE (`name` is the full subcommand name).
pub fn config(cx: &mut Ctx<'_>, name: &str, argv: &[Bytes]) -> CmdResult {
    match name {
        "config|get" => {
            let patterns: Vec<&[u8]> = argv[2..].iter().map(|a| a.as_ref()).collect();
            let pairs = cx.shared.config().get(&patterns);
            Ok(Frame::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Frame::bulk(k), Frame::bulk(v)))
                    .collect(),
            ))
        }
        "config|set" => {
            let args = &argv[2..];
            if args.len() % 2 != 0 {
                return Err(ExecError::err(
                    "wrong number of arguments for 'config|set' command",
                ));
            }
            let pairs: Vec<(&[u8], &[u8])> = args
                .chunks(2)
                .map(|p| (p[0].as_ref(), p[1].as_ref()))
                .collect();
            let notify = cx.shared.set_config(&pairs).map_err(ExecError::err)?;
            if let Some(value) = notify {
                // Cluster-wide: the other nodes adopt the record (see
                // `crate::notify`). Outside a transaction (NoTx) the
                // handler never gets here for this parameter.
                cx.tx.put(
                    crate::notify::CONFIG_KEY.to_vec(),
                    crate::notify::encode_record(cx.start_ts, &value),
                );
            }
            Ok(Frame::ok())
        }
        "config|resetstat" => {
            let sh = cx.shared;
            sh.keyspace_hits.store(0, Ordering::Relaxed);
            sh.keyspace_misses.store(0, Ordering::Relaxed);
            sh.expired_keys.store(0, Ordering::Relaxed);
            sh.stats.total_commands.store(0, Ordering::Relaxed);
            sh.stats.total_connections.store(0, Ordering::Relaxed);
            sh.stats.rejected_connections.store(0, Ordering::Relaxed);
            sh.stats.total_error_replies.store(0, Ordering::Relaxed);
            let io = &sh.stats.io;
            for c in [
                &io.net_input_bytes,
                &io.net_output_bytes,
                &io.reads_processed,
                &io.writes_processed,
            ] {
                c.store(0, Ordering::Relaxed);
            }
            if let Ok(mut m) = sh.stats.commands.lock() {
                m.clear();
            }
            if let Ok(mut m) = sh.stats.errors.lock() {
                m.clear();
            }
            Ok(Frame::ok())
        }
        "config|rewrite" => Err(ExecError::err(
            "The server is running without a config file",
        )),
        _ => Err(ExecError::syntax()),
    }
}

/// PING / ECHO / TIME / SELECT when they run inside EXEC (outside it the
/// protocol layer answers them).
pub fn connection_cmd(name: &str, argv: &[Bytes]) -> CmdResult {
    match name {
        "ping" => Ok(match argv.get(1) {
            Some(m) => Frame::Bulk(m.clone()),
            None => Frame::simple("PONG"),
        }),
        "echo" => Ok(Frame::Bulk(argv[1].clone())),
        "time" => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Ok(Frame::Array(vec![
                Frame::bulk(now.as_secs().to_string()),
                Frame::bulk(now.subsec_micros().to_string()),
            ]))
        }
        _ => Err(ExecError::err(format!(
            "'{name}' is not supported inside MULTI/EXEC"
        ))),
    }
}
