//! With the `grpc` feature: generates the admin and cluster gRPC services
//! (`proto/admin.proto`, `proto/cluster.proto`) with tonic-prost-build. protoc comes from the
//! system (Debian `protobuf-compiler`, installed by scripts/install-deps.sh) or from `$PROTOC`.
//! Without the feature (the pure codecs) nothing is generated and protoc is not needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "grpc")]
    grpc::generate()?;
    Ok(())
}

#[cfg(feature = "grpc")]
mod grpc {
    use std::path::PathBuf;
    use std::process::Command;

    const PROTO: &str = "proto/admin.proto";
    const CLUSTER_PROTO: &str = "proto/cluster.proto";
    const INCLUDE: &str = "proto";

    pub fn generate() -> Result<(), Box<dyn std::error::Error>> {
        println!("cargo:rerun-if-changed={PROTO}");
        println!("cargo:rerun-if-changed={CLUSTER_PROTO}");
        println!("cargo:rerun-if-env-changed=PROTOC");
        let protoc =
            std::env::var_os("PROTOC").map(PathBuf::from).unwrap_or_else(|| "protoc".into());
        match Command::new(&protoc).arg("--version").output() {
            Ok(o) if o.status.success() => {}
            _ => {
                return Err(format!(
                    "protoc not found (tried {}): the admin API is generated from {PROTO}. \
                     Install it with `sudo scripts/install-deps.sh` (Debian package protobuf-compiler), \
                     or point $PROTOC at a protoc binary.",
                    protoc.display()
                )
                .into())
            }
        }
        tonic_prost_build::configure().compile_protos(&[PROTO, CLUSTER_PROTO], &[INCLUDE])?;
        Ok(())
    }
}
