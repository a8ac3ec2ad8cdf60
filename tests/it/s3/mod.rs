//! Repositories on S3 (cargo feature `s3`, in the default build), against a moto server the
//! tests start themselves (`common::s3`).

mod backend;
mod blobs;
mod credentials;
mod pack_delta;
mod repo;
