//! `-B --pack-delta` to S3: the delta reads its base from the bucket.

use crate::common::s3::S3Site;
use crate::common::{Site, ok, run, zodb};

#[test]
fn pack_deltas_backed_up_to_s3_restore_every_date_exactly_and_verify() {
    let site = S3Site::new(Site::new(), "pack-delta");
    let grow = |txns: u64, seed: u64| {
        zodb::grow_with(&site.data_fs(), txns, seed, &["--objects", "500"]);
    };
    let mut states = Vec::new();
    let mut backup = || {
        let stamp = site.backup_both(&["-B", "--pack-delta"]);
        states.push((stamp, site.committed()));
    };
    grow(40, 700);
    backup();
    grow(10, 701);
    backup();
    zodb::undo(&site.data_fs());
    zodb::pack_with(&site.data_fs(), &["--at", "0.5"]);
    backup();
    grow(5, 702);
    backup();
    zodb::pack(&site.data_fs());
    backup();
    // The twin holds two deltas; S3 holds the same bytes.
    let deltas = site
        .data_files()
        .iter()
        .filter(|n| {
            site.read(&format!("repo/{n}"))
                .starts_with(repozo::repo::packdelta::MAGIC)
        })
        .count();
    assert_eq!(deltas, 2, "{:?}", site.data_files());
    site.assert_same_as_twin();
    let url = site.url();
    for (stamp, data) in &states {
        ok(run(
            site.ours(&["-R", "-r", &url, "-D", stamp, "-o", "s3.fs"])
        ));
        assert!(
            site.read("s3.fs") == *data,
            "{stamp}: restored from S3 unlike the Data.fs then"
        );
    }
    ok(run(site.ours(&["-V", "-r", &url])));
    ok(run(site.ours(&["-V", "--deep", "-r", &url])));
}
