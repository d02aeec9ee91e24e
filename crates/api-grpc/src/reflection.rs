//! gRPC server reflection, so grpcurl and friends work with no proto files.
//!
//! Both reflection protocols are served: `grpc.reflection.v1` (newer
//! clients) and `grpc.reflection.v1alpha` (older grpcurl and most tooling
//! still in the wild). Both advertise:
//!
//! - the protos as declared: `RawKV`, `TransactionalKV`, `Distribution` (no
//!   package) and `elastickv.admin.Admin`;
//! - the `proto.`-qualified twins (`proto.RawKV`, ...) from
//!   [`QUALIFIED_FILE_DESCRIPTOR_SET`], which the alias layer makes callable.
//!
//! The internal Raft transport (`elastickv.internal.*`) is removed from the
//! descriptor set before it is registered, so it is neither listed nor
//! resolvable by symbol or file name.
//!
//! **Why the twins are renamed.** tonic-reflection 0.12 indexes files by
//! name and silently skips a file whose name it has already seen. The twins
//! are compiled from copies named `service.proto` / `distribution.proto`,
//! exactly like the originals, so registering them as-is would drop every
//! `proto.*` service without an error. Giving them distinct names
//! (`proto/service.proto`, ...) — and rewriting any import between them to
//! match — fixes that. Their symbols cannot collide with the originals'
//! because they live in package `proto`; tonic-reflection itself does not
//! mind duplicate *simple* names across packages.

use std::collections::{HashMap, HashSet};

use elastickv_proto::{FILE_DESCRIPTOR_SET, QUALIFIED_FILE_DESCRIPTOR_SET};
use prost::Message;
use prost_types::FileDescriptorSet;
use tonic_reflection::server::{v1, v1alpha, Builder};

/// Packages never exposed through reflection.
pub const HIDDEN_PACKAGES: &[&str] = &["elastickv.internal"];

/// Directory prefix given to the `proto.`-qualified twin files.
pub const QUALIFIED_FILE_PREFIX: &str = "proto/";

/// Why the reflection services could not be built. Only a broken build of
/// `elastickv-proto` can cause one, so the server should fail at startup.
#[derive(Debug, thiserror::Error)]
pub enum ReflectionError {
    #[error("embedded descriptor set does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("descriptor file {file} imports hidden file {dependency}")]
    HiddenDependency { file: String, dependency: String },
    #[error("building the reflection service failed: {0}")]
    Build(#[from] tonic_reflection::server::Error),
}

/// The two reflection services, ready for `Router::add_service`.
pub struct ReflectionServices<V1, V1Alpha> {
    /// `grpc.reflection.v1.ServerReflection`.
    pub v1: V1,
    /// `grpc.reflection.v1alpha.ServerReflection`.
    pub v1alpha: V1Alpha,
}

/// The descriptor sets reflection serves: the declared protos minus hidden
/// packages, and the renamed `proto.` twins.
pub fn descriptor_sets() -> Result<Vec<FileDescriptorSet>, ReflectionError> {
    let declared = without_hidden(FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)?)?;
    let twins = renamed(
        FileDescriptorSet::decode(QUALIFIED_FILE_DESCRIPTOR_SET)?,
        QUALIFIED_FILE_PREFIX,
    );
    Ok(vec![declared, twins])
}

/// Drop the files of [`HIDDEN_PACKAGES`]; refuse if a kept file imports one
/// (it would then be unresolvable by clients).
fn without_hidden(mut set: FileDescriptorSet) -> Result<FileDescriptorSet, ReflectionError> {
    let hidden: HashSet<String> = set
        .file
        .iter()
        .filter(|f| HIDDEN_PACKAGES.contains(&f.package()))
        .map(|f| f.name().to_owned())
        .collect();
    set.file.retain(|f| !hidden.contains(f.name()));
    for f in &set.file {
        if let Some(dep) = f.dependency.iter().find(|d| hidden.contains(*d)) {
            return Err(ReflectionError::HiddenDependency {
                file: f.name().to_owned(),
                dependency: dep.clone(),
            });
        }
    }
    Ok(set)
}

/// Prefix every file name in `set`, and imports between its files to match.
fn renamed(mut set: FileDescriptorSet, prefix: &str) -> FileDescriptorSet {
    let names: HashMap<String, String> = set
        .file
        .iter()
        .map(|f| (f.name().to_owned(), format!("{prefix}{}", f.name())))
        .collect();
    for f in &mut set.file {
        if let Some(new) = names.get(f.name()) {
            f.name = Some(new.clone());
        }
        for dep in &mut f.dependency {
            if let Some(new) = names.get(dep) {
                *dep = new.clone();
            }
        }
    }
    set
}

/// Build the v1 and v1alpha reflection services.
#[allow(clippy::type_complexity)] // the concrete types are private to tonic-reflection
pub fn reflection_services() -> Result<
    ReflectionServices<
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    >,
    ReflectionError,
> {
    let sets = descriptor_sets()?;
    let builder = || {
        sets.iter()
            .cloned()
            .fold(Builder::configure(), Builder::register_file_descriptor_set)
    };
    Ok(ReflectionServices {
        v1: builder().build_v1()?,
        v1alpha: builder().build_v1alpha()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services_in(sets: &[FileDescriptorSet]) -> Vec<String> {
        let mut out = Vec::new();
        for f in sets.iter().flat_map(|s| &s.file) {
            for s in &f.service {
                out.push(match f.package() {
                    "" => s.name().to_owned(),
                    p => format!("{p}.{}", s.name()),
                });
            }
        }
        out.sort();
        out
    }

    #[test]
    fn both_names_present_and_internal_hidden() {
        let sets = descriptor_sets().expect("descriptor sets");
        assert_eq!(
            services_in(&sets),
            vec![
                "Distribution",
                "RawKV",
                "TransactionalKV",
                "elastickv.admin.Admin",
                "elastickv.txn.Txn",
                "proto.Distribution",
                "proto.RawKV",
                "proto.TransactionalKV",
            ]
        );
    }

    #[test]
    fn file_names_are_unique_so_none_is_skipped() {
        let sets = descriptor_sets().expect("descriptor sets");
        let names: Vec<&str> = sets
            .iter()
            .flat_map(|s| &s.file)
            .map(|f| f.name())
            .collect();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        assert!(names.contains(&"proto/service.proto"), "{names:?}");
    }

    #[test]
    fn renaming_follows_imports() {
        let mut set = FileDescriptorSet::default();
        set.file.push(prost_types::FileDescriptorProto {
            name: Some("a.proto".into()),
            dependency: vec!["b.proto".into(), "google/protobuf/empty.proto".into()],
            ..Default::default()
        });
        set.file.push(prost_types::FileDescriptorProto {
            name: Some("b.proto".into()),
            ..Default::default()
        });
        let set = renamed(set, "p/");
        assert_eq!(set.file[0].name(), "p/a.proto");
        assert_eq!(
            set.file[0].dependency,
            vec![
                "p/b.proto".to_string(),
                "google/protobuf/empty.proto".to_string()
            ]
        );
        assert_eq!(set.file[1].name(), "p/b.proto");
    }

    #[test]
    fn importing_a_hidden_file_is_an_error() {
        let mut set = FileDescriptorSet::default();
        set.file.push(prost_types::FileDescriptorProto {
            name: Some("internal.proto".into()),
            package: Some("elastickv.internal".into()),
            ..Default::default()
        });
        set.file.push(prost_types::FileDescriptorProto {
            name: Some("x.proto".into()),
            dependency: vec!["internal.proto".into()],
            ..Default::default()
        });
        assert!(matches!(
            without_hidden(set),
            Err(ReflectionError::HiddenDependency { .. })
        ));
    }

    #[test]
    fn services_build() {
        reflection_services().expect("reflection services build");
    }
}
