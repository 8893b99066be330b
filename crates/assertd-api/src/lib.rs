//! Generated code for the `assertd.v1` gRPC API, and its encoded file
//! descriptor set (for server reflection).
//!
//! This crate holds no logic: conversions live with the code that needs them.

#![allow(missing_docs, clippy::all)]

/// The `assertd.v1` package.
pub mod v1 {
    tonic::include_proto!("assertd.v1");
}

/// Encoded `FileDescriptorSet` of the API, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("assertd_descriptor");
