//! Repositories on S3 (cargo feature `s3`), against a moto server the
//! tests start themselves (`common::s3`).

mod backend;
mod blobs;
mod repo;
