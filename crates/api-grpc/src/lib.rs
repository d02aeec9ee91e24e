//! The gRPC front end of an Elastickv node: the original's `RawKV` and
//! `Distribution` APIs, the admin API, gRPC reflection, and the
//! `proto.`-name aliases, all served over the data plane
//! ([`elastickv_kv::Kv`]).
//!
//! # Wiring (for the server binary)
//!
//! Everything goes on **one** `tonic::transport::Server` listening on the
//! node's `--address`; the Raft transport is added to the same router:
//!
//! ```text
//! let listener = tokio::net::TcpListener::bind(address).await?;
//! elastickv_api_grpc::router(kv.clone())?   // RawKV + Distribution + Admin + reflection, alias layer
//!     .add_service(
//!         RaftTransportServer::new(transport)
//!             .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
//!             .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
//!     )
//!     .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
//!     .await?;
//! ```
//!
//! tonic sets message-size limits per service, not per server, so every
//! service added by the caller must set them itself, as above. Message
//! limits of the services built here come from
//! [`elastickv_types::limits::MAX_GRPC_MESSAGE_BYTES`].
//!
//! The finer-grained pieces — [`services`], [`alias_layer`],
//! [`reflection_services`], [`server_builder`] — are public for a caller that
//! needs to assemble the server differently. The alias layer must be a
//! *server* layer (`Server::builder().layer(..)`), so that it runs before
//! routing.

pub mod admin;
pub mod alias;
pub mod backend;
pub mod distribution;
pub mod errors;
pub mod raw;
pub mod reflection;
pub mod txn;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod fake;

use elastickv_kv::Kv;
use elastickv_proto::admin::admin_server::AdminServer;
use elastickv_proto::public::distribution_server::DistributionServer;
use elastickv_proto::public::raw_kv_server::RawKvServer;
use elastickv_types::limits::MAX_GRPC_MESSAGE_BYTES;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};

pub use admin::AdminService;
pub use alias::{AliasLayer, AliasService};
pub use backend::DataPlane;
pub use distribution::{DistributionService, RouteCatalog};
pub use errors::{key_error, status_from_kv, RequestError};
pub use raw::RawKvService;
pub use reflection::{reflection_services, ReflectionError, ReflectionServices};

/// The data-plane services of the front end, with message limits set.
pub struct GrpcServices<K = Kv> {
    /// `RawKV` (also reachable as `proto.RawKV` through the alias layer).
    pub raw_kv: RawKvServer<RawKvService<K>>,
    /// `elastickv.admin.Admin`.
    pub admin: AdminServer<AdminService<K>>,
    /// `Distribution` (also reachable as `proto.Distribution`).
    pub distribution: DistributionServer<DistributionService<K>>,
}

/// Build the front end's services over `kv` (normally the node's [`Kv`]).
pub fn services<K: DataPlane + RouteCatalog + Clone>(kv: K) -> GrpcServices<K> {
    GrpcServices {
        raw_kv: RawKvServer::new(RawKvService::new(kv.clone()))
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        distribution: DistributionServer::new(DistributionService::new(kv.clone()))
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
        admin: AdminServer::new(AdminService::new(kv))
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
    }
}

/// The layer answering `proto.RawKV/...` etc. under their bare names.
pub fn alias_layer() -> AliasLayer {
    AliasLayer
}

/// The server layer stack [`server_builder`] installs.
pub type ServerLayers = Stack<AliasLayer, Identity>;

/// A server builder with the alias layer installed.
pub fn server_builder() -> Server<ServerLayers> {
    use elastickv_proto::channel::{CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES};
    Server::builder()
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .layer(alias_layer())
}

/// A router serving every client service over `kv` (RawKV, TransactionalKV,
/// the interactive Txn API, Distribution, Admin, reflection) with the alias
/// layer installed. Add the Raft transport to it, then serve.
pub fn router(kv: Kv) -> Result<Router<ServerLayers>, ReflectionError> {
    Ok(router_with(kv.clone())?
        .add_service(txn::TransactionalKvService::server(kv.clone()))
        .add_service(txn::TxnService::server(kv)))
}

/// The services that need only the [`DataPlane`] and [`RouteCatalog`]
/// slices of `Kv` (so tests can serve them over a fake): RawKV,
/// Distribution, Admin and reflection.
pub fn router_with<K: DataPlane + RouteCatalog + Clone>(
    kv: K,
) -> Result<Router<ServerLayers>, ReflectionError> {
    let GrpcServices {
        raw_kv,
        admin,
        distribution,
    } = services(kv);
    let reflection = reflection_services()?;
    Ok(server_builder()
        .add_service(raw_kv)
        .add_service(distribution)
        .add_service(admin)
        .add_service(reflection.v1)
        .add_service(reflection.v1alpha))
}
