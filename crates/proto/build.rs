//! Compiles the protos with protox (pure Rust; no `protoc` needed) and writes
//! two descriptor sets for gRPC reflection: the protos as declared (bare
//! service names, as the original's clients use) and twins of the public ones
//! under `package proto;` (the names its README's grpcurl commands use).

use std::path::PathBuf;

const PUBLIC: &[&str] = &["service.proto", "distribution.proto"];
const INTERNAL: &[&str] = &["internal.proto", "admin.proto", "txn.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let files: Vec<String> = PUBLIC
        .iter()
        .chain(INTERNAL)
        .map(|f| format!("proto/{f}"))
        .collect();
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(&files, ["proto"])?;
    std::fs::write(
        out.join("descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::ProstCodec")
        .compile_fds(fds)?;

    // The `proto.`-qualified twins exist only for reflection.
    let twin_dir = out.join("qualified");
    std::fs::create_dir_all(&twin_dir)?;
    for f in PUBLIC {
        let src = std::fs::read_to_string(format!("proto/{f}"))?;
        let twin = src.replacen(
            "syntax = \"proto3\";",
            "syntax = \"proto3\";\npackage proto;",
            1,
        );
        std::fs::write(twin_dir.join(f), twin)?;
    }
    let twin_fds = protox::compile(PUBLIC, [&twin_dir])?;
    std::fs::write(
        out.join("qualified_descriptor.bin"),
        prost::Message::encode_to_vec(&twin_fds),
    )?;
    Ok(())
}
