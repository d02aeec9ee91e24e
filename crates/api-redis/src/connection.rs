//! Buffered RESP connection over any tokio `AsyncRead + AsyncWrite`:
//! decodes requests with [`RequestDecoder`], encodes replies in the
//! connection's negotiated protocol (RESP2/RESP3), and enforces the
//! per-client limits:
//!
//! * **query buffer**: received-but-unexecuted input may not exceed
//!   `Limits::max_query_buffer` (Redis `client-query-buffer-limit`);
//! * **output buffer**: encoded-but-unsent replies may not exceed
//!   `Limits::max_output_buffer`; a client that does not read its replies
//!   therefore gets disconnected instead of growing our memory, and a
//!   flush that makes no progress for `write_timeout` disconnects it too.
//!
//! Pipelining: the caller takes every command that is already buffered
//! ([`Connection::try_next_command`]), queues the replies in order and
//! flushes once per batch ([`Connection::flush`]); the socket is read only
//! when no complete command is left.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{Frame, Protocol};
use crate::parse::Command;
use crate::resp::{Limits, ProtocolError, RequestDecoder};

/// Size of one socket read (Redis's `PROTO_IOBUF_LEN`).
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection has to be closed.
#[derive(Debug, Error)]
pub enum ConnError {
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The client broke the protocol; the error reply should be sent
    /// before closing.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    /// Too much unexecuted input.
    #[error("client reached the max query buffer length")]
    QueryBufferLimit,
    /// Too many unsent replies.
    #[error("client reached the output buffer limit")]
    OutputBufferLimit,
    /// The client did not read its replies within the write timeout.
    #[error("client did not read its replies in time")]
    WriteTimeout,
    /// The peer closed the connection in the middle of a command.
    #[error("connection reset by peer mid-command")]
    UnexpectedEof,
}

/// Socket traffic of every connection of a server (INFO
/// `total_net_*_bytes`, `total_reads/writes_processed`).
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Socket reads that returned data.
    pub reads_processed: AtomicU64,
    /// Socket writes.
    pub writes_processed: AtomicU64,
}

impl IoCounters {
    fn read(&self, n: usize) {
        self.reads_processed.fetch_add(1, Ordering::Relaxed);
        self.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn wrote(&self, n: usize) {
        self.writes_processed.fetch_add(1, Ordering::Relaxed);
        self.net_output_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A client connection.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    io: Arc<IoCounters>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    decoder: RequestDecoder,
    protocol: Protocol,
    write_timeout: Duration,
    max_query_buffer: usize,
    max_output_buffer: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream. `write_timeout` bounds how long one flush may wait
    /// for the client to accept data.
    pub fn new(stream: S, limits: Limits, write_timeout: Duration) -> Self {
        Connection {
            stream,
            io: Arc::default(),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::with_capacity(READ_CHUNK),
            max_query_buffer: limits.max_query_buffer,
            max_output_buffer: limits.max_output_buffer,
            decoder: RequestDecoder::new(limits),
            protocol: Protocol::Resp2,
            write_timeout,
        }
    }

    /// Counts this connection's traffic into `io` (shared by a server's
    /// connections).
    pub fn count_into(&mut self, io: Arc<IoCounters>) {
        self.io = io;
    }

    /// The protocol replies are encoded in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches the protocol (HELLO); affects replies queued afterwards.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// Enables Redis's pre-authentication request size caps.
    pub fn set_auth_required(&mut self, required: bool) {
        self.decoder.set_auth_required(required);
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Bytes of input held: buffered plus partially decoded.
    pub fn query_buffer_len(&self) -> usize {
        self.read_buf
            .len()
            .saturating_add(self.decoder.pending_bytes())
    }

    /// Bytes of encoded replies not yet written.
    pub fn pending_output(&self) -> usize {
        self.write_buf.len()
    }

    /// Decodes a command that is already buffered, without touching the
    /// socket.
    pub fn try_next_command(&mut self) -> Result<Option<Command>, ConnError> {
        loop {
            match self.decoder.decode(&mut self.read_buf)? {
                None => return Ok(None),
                Some(argv) => {
                    if let Some(cmd) = Command::new(argv) {
                        return Ok(Some(cmd));
                    }
                }
            }
        }
    }

    /// The next command, reading from the socket as needed. `Ok(None)` when
    /// the client closed the connection between commands.
    pub async fn read_command(&mut self) -> Result<Option<Command>, ConnError> {
        loop {
            if let Some(cmd) = self.try_next_command()? {
                return Ok(Some(cmd));
            }
            if self.query_buffer_len() > self.max_query_buffer {
                return Err(ConnError::QueryBufferLimit);
            }
            // Read in bounded chunks: memory grows only with data actually
            // received, never with lengths a client merely announces.
            self.read_buf.reserve(READ_CHUNK);
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            self.io.read(n);
            if n == 0 {
                if self.read_buf.is_empty() && !self.decoder.in_progress() {
                    return Ok(None);
                }
                return Err(ConnError::UnexpectedEof);
            }
        }
    }

    /// Reads (and keeps) input until the peer closes the connection or
    /// the socket fails; never returns while the query buffer is full.
    /// Used while a blocking command waits.
    pub async fn wait_closed(&mut self) {
        loop {
            if self.query_buffer_len() > self.max_query_buffer {
                return std::future::pending().await;
            }
            self.read_buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.read_buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => self.io.read(n),
            }
        }
    }

    /// Encodes a reply into the output buffer (in the current protocol).
    /// Fails, without queuing, once the output buffer limit is exceeded.
    pub fn queue_reply(&mut self, frame: &Frame) -> Result<(), ConnError> {
        frame.encode(self.protocol, &mut self.write_buf);
        if self.write_buf.len() > self.max_output_buffer {
            self.write_buf.clear();
            return Err(ConnError::OutputBufferLimit);
        }
        Ok(())
    }

    /// Queues already-encoded bytes (for replies built elsewhere).
    pub fn queue_raw(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.write_buf.extend_from_slice(bytes);
        if self.write_buf.len() > self.max_output_buffer {
            self.write_buf.clear();
            return Err(ConnError::OutputBufferLimit);
        }
        Ok(())
    }

    /// Writes all queued replies. A client that accepts nothing for
    /// `write_timeout` is considered dead.
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        while !self.write_buf.is_empty() {
            let written = tokio::time::timeout(
                self.write_timeout,
                self.stream.write_buf(&mut self.write_buf),
            )
            .await
            .map_err(|_| ConnError::WriteTimeout)??;
            self.io.wrote(written);
            if written == 0 {
                return Err(ConnError::Io(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "peer closed",
                )));
            }
        }
        tokio::time::timeout(self.write_timeout, self.stream.flush())
            .await
            .map_err(|_| ConnError::WriteTimeout)??;
        Ok(())
    }

    /// Flushes and shuts the write side down.
    pub async fn shutdown(&mut self) -> Result<(), ConnError> {
        self.flush().await?;
        let _ = tokio::time::timeout(self.write_timeout, self.stream.shutdown()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn pipelined_commands_and_resp3_switch() {
        let (client, server) = duplex(1024);
        let mut conn = Connection::new(server, Limits::default(), Duration::from_secs(5));
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"*1\r\n$4\r\nPING\r\nECHO hi\r\n")
            .await
            .expect("write");
        let first = conn.read_command().await.expect("ok").expect("cmd");
        assert!(first.is("ping"));
        let second = conn.try_next_command().expect("ok").expect("cmd");
        assert_eq!(second.args()[0].as_ref(), b"hi");
        assert!(conn.try_next_command().expect("ok").is_none());
        conn.queue_reply(&Frame::Null).expect("queue");
        conn.set_protocol(Protocol::Resp3);
        conn.queue_reply(&Frame::Null).expect("queue");
        conn.flush().await.expect("flush");
        let mut buf = [0u8; 8];
        cr.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"$-1\r\n_\r\n");
    }

    #[tokio::test]
    async fn eof_between_and_inside_commands() {
        let (client, server) = duplex(1024);
        let mut conn = Connection::new(server, Limits::default(), Duration::from_secs(5));
        drop(client);
        assert!(matches!(conn.read_command().await, Ok(None)));
        let (mut client, server) = duplex(1024);
        let mut conn = Connection::new(server, Limits::default(), Duration::from_secs(5));
        client
            .write_all(b"*2\r\n$3\r\nGET\r\n")
            .await
            .expect("write");
        drop(client);
        assert!(matches!(
            conn.read_command().await,
            Err(ConnError::UnexpectedEof)
        ));
    }

    #[tokio::test]
    async fn query_buffer_limit() {
        let (mut client, server) = duplex(64 * 1024);
        let limits = Limits {
            max_query_buffer: 1000,
            ..Limits::default()
        };
        let mut conn = Connection::new(server, limits, Duration::from_secs(5));
        let writer = tokio::spawn(async move {
            let _ = client.write_all(b"*1\r\n$100000\r\n").await;
            let _ = client.write_all(&[b'x'; 5000]).await;
            client
        });
        assert!(matches!(
            conn.read_command().await,
            Err(ConnError::QueryBufferLimit)
        ));
        drop(writer.await);
    }

    #[tokio::test]
    async fn output_limit_and_write_timeout() {
        let (_client, server) = duplex(64);
        let limits = Limits {
            max_output_buffer: 100,
            ..Limits::default()
        };
        let mut conn = Connection::new(server, limits, Duration::from_millis(50));
        assert!(matches!(
            conn.queue_reply(&Frame::bulk(vec![b'x'; 200])),
            Err(ConnError::OutputBufferLimit)
        ));
        conn.queue_reply(&Frame::bulk(vec![b'x'; 90]))
            .expect("fits");
        // The client never reads: the 64-byte pipe fills and the flush
        // times out instead of hanging forever.
        assert!(matches!(conn.flush().await, Err(ConnError::WriteTimeout)));
    }
}
