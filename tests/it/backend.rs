//! The storage backends: the same conformance bodies run against a local
//! directory here and, with cargo feature `s3`, against a real S3 server
//! (moto, started by the suite) in `s3::backend`.

use std::io::{Read, Write};
use std::time::Duration;

use repozo::Error;
use repozo::backend::{Backend, Entry, Local, Put};

/// A backend on fresh, empty storage.
pub(crate) struct Fixture {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) _dir: Option<tempfile::TempDir>,
}

fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        backend: Box::new(Local::new(dir.path().to_str().unwrap())),
        _dir: Some(dir),
    }
}

/// One `#[test]` per conformance body, each on a fresh backend from
/// `$fixture()` (a [`Fixture`]): `backend::local_dir::NAME` below,
/// `s3::backend::moto::NAME` with feature `s3`.
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::backend::conformance_tests!($fixture;
            a_second_put_if_absent_finds_the_first_and_leaves_it,
            an_upload_appears_only_at_commit_and_a_dropped_one_leaves_nothing,
            a_20_mib_streamed_upload_reads_back_byte_identical_whole_and_by_range,
            a_compare_and_swap_with_a_stale_version_fails_and_changes_nothing,
            listing_gives_the_top_level_files_or_everything_below_a_prefix,
            open_optional_reads_an_object_and_gives_none_for_a_missing_one,
            delete_removes_an_object_and_deleting_a_missing_one_is_no_error,
            the_lock_excludes_a_second_holder_until_it_is_dropped,
            the_probe_of_conditional_writes_passes,
            write_whole_creates_then_replaces_and_read_optional_tells_absence,
            append_creates_the_dat_then_adds_lines_in_order,
            delete_says_an_object_that_was_there_was_there,
            the_repository_listing_names_every_file_at_the_top_and_nothing_below,
            content_addressed_objects_are_stored_once_and_swept_when_unreferenced,
        );
    };
    ($fixture:path; $($name:ident),* $(,)?) => {
        $( #[test] fn $name() { $crate::backend::$name(&*$fixture().backend) } )*
    };
}
pub(crate) use conformance_tests;

mod local_dir {
    super::conformance_tests!(super::local);
}

/// Bytes of a pattern no two parts share.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 2_654_435_761) >> 13) as u8)
        .collect()
}

pub(crate) fn a_second_put_if_absent_finds_the_first_and_leaves_it(b: &dyn Backend) {
    assert_eq!(b.put_if_absent("x.index", b"first").unwrap(), Put::Created);
    assert_eq!(
        b.put_if_absent("x.index", b"second").unwrap(),
        Put::AlreadyExists
    );
    assert_eq!(b.read("x.index").unwrap(), b"first");
    let blob = "blobs/objects/ab/ab01";
    assert_eq!(b.put_if_absent(blob, b"blob").unwrap(), Put::Created);
    assert_eq!(b.put_if_absent(blob, b"blob").unwrap(), Put::AlreadyExists);
    assert_eq!(b.size(blob).unwrap(), Some(4));
}

pub(crate) fn an_upload_appears_only_at_commit_and_a_dropped_one_leaves_nothing(b: &dyn Backend) {
    let mut up = b.create("2026-01-01-00-00-00.fs").unwrap();
    up.write_all(b"small file").unwrap();
    assert!(!b.exists("2026-01-01-00-00-00.fs").unwrap());
    assert_eq!(up.commit().unwrap(), 10);
    assert_eq!(b.read("2026-01-01-00-00-00.fs").unwrap(), b"small file");

    let err = b.create("2026-01-01-00-00-00.fs").err().unwrap();
    assert!(matches!(err, Error::WouldOverwrite(_)), "{err}");

    // Larger than one S3 part, so a multipart upload is under way.
    let mut up = b.create("2026-01-02-00-00-00.deltafs").unwrap();
    up.write_all(&pattern(9 << 20)).unwrap();
    assert!(!b.exists("2026-01-02-00-00-00.deltafs").unwrap());
    drop(up);
    assert!(!b.exists("2026-01-02-00-00-00.deltafs").unwrap());
    let names: Vec<String> = b
        .list("", false)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["2026-01-01-00-00-00.fs"], "no leftovers");
}

pub(crate) fn a_20_mib_streamed_upload_reads_back_byte_identical_whole_and_by_range(
    b: &dyn Backend,
) {
    let data = pattern((20 << 20) + 12_345);
    let name = "2026-01-03-00-00-00.fsz";
    let mut up = b.create(name).unwrap();
    for chunk in data.chunks(1_000_003) {
        up.write_all(chunk).unwrap();
    }
    assert_eq!(up.commit().unwrap(), data.len() as u64);
    assert_eq!(b.size(name).unwrap(), Some(data.len() as u64));

    let mut back = Vec::new();
    let mut r = b.open(name).unwrap();
    let mut buf = vec![0; 65_536];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    assert!(back == data, "streamed read differs");

    let part = 8u64 << 20;
    for (start, len) in [(0u64, 100u64), (part - 7, 20), (12_345_678, 1 << 20)] {
        let got = b.read_range(name, start, len).unwrap();
        assert!(
            got == data[start as usize..(start + len) as usize],
            "range {start}+{len}"
        );
    }
    let end = data.len() as u64;
    assert_eq!(
        b.read_range(name, end - 5, 100).unwrap(),
        &data[data.len() - 5..],
        "a range past the end stops at the end"
    );
    assert!(b.read_range(name, end + 10, 100).unwrap().is_empty());
}

pub(crate) fn a_compare_and_swap_with_a_stale_version_fails_and_changes_nothing(b: &dyn Backend) {
    let dat = "2026-01-01-00-00-00.dat";
    assert!(b.read_versioned(dat).unwrap().is_none());
    b.put_if_absent(dat, b"line 1\n").unwrap();
    let (old, v1) = b.read_versioned(dat).unwrap().unwrap();
    assert_eq!(old, b"line 1\n");
    let v2 = b.replace(dat, b"line 1\nline 2\n", &v1).unwrap();
    assert_ne!(v1, v2);
    let err = b.replace(dat, b"line 1\nother\n", &v1).unwrap_err();
    assert!(matches!(err, Error::Changed(_)), "{err}");
    assert!(err.to_string().contains(dat), "{err}");
    assert_eq!(b.read(dat).unwrap(), b"line 1\nline 2\n");
    let (_, v3) = b.read_versioned(dat).unwrap().unwrap();
    assert_eq!(v2, v3, "the version read is the one the swap returned");
    b.replace(dat, b"line 1\nline 2\nline 3\n", &v3).unwrap();

    b.delete(dat).unwrap();
    let err = b.replace(dat, b"gone", &v3).unwrap_err();
    assert!(matches!(err, Error::Changed(_)), "{err}");
}

pub(crate) fn listing_gives_the_top_level_files_or_everything_below_a_prefix(b: &dyn Backend) {
    assert!(b.list("", false).unwrap().is_empty());
    b.put_if_absent("b.dat", b"12345").unwrap();
    b.put_if_absent("a.fs", b"123").unwrap();
    b.put_if_absent("blobs/objects/cd/cd02", b"22").unwrap();
    b.put_if_absent("blobs/objects/ab/ab01", b"1").unwrap();
    b.put_if_absent("blobs/2026-01-01-00-00-00.blobs", b"m")
        .unwrap();
    let e = |name: &str, size| Entry {
        name: name.into(),
        size,
    };
    assert_eq!(
        b.list("", false).unwrap(),
        [e("a.fs", 3), e("b.dat", 5)],
        "the repository's own files, nothing below it"
    );
    assert_eq!(
        b.list("blobs/objects/", true).unwrap(),
        [e("blobs/objects/ab/ab01", 1), e("blobs/objects/cd/cd02", 2)]
    );
    assert_eq!(
        b.list("blobs/", false).unwrap(),
        [e("blobs/2026-01-01-00-00-00.blobs", 1)]
    );
    assert_eq!(b.list("", true).unwrap().len(), 5);
    assert!(b.list("nothing/", true).unwrap().is_empty());
}

pub(crate) fn open_optional_reads_an_object_and_gives_none_for_a_missing_one(b: &dyn Backend) {
    b.put_if_absent("blobs/objects/ab/x", b"content").unwrap();
    let mut got = Vec::new();
    b.open_optional("blobs/objects/ab/x")
        .unwrap()
        .expect("the object exists")
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, b"content");
    assert!(b.open_optional("blobs/objects/ab/y").unwrap().is_none());
}

pub(crate) fn delete_removes_an_object_and_deleting_a_missing_one_is_no_error(b: &dyn Backend) {
    b.put_if_absent("x.fs", b"x").unwrap();
    assert!(b.exists("x.fs").unwrap());
    b.delete("x.fs").unwrap();
    assert!(!b.exists("x.fs").unwrap());
    assert_eq!(b.size("x.fs").unwrap(), None);
    b.delete("x.fs").unwrap();
    assert!(b.open("x.fs").is_err());
}

pub(crate) fn the_lock_excludes_a_second_holder_until_it_is_dropped(b: &dyn Backend) {
    let first = b.lock(Duration::ZERO).unwrap();
    first.check().unwrap();
    let t = std::time::Instant::now();
    let err = b.lock(Duration::from_millis(600)).unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(600), "it waited");
    assert_eq!(err.exit_code(), repozo::error::EXIT_LOCKED, "{err}");
    assert!(err.to_string().contains(&b.describe()), "{err}");
    drop(first);
    let again = b.lock(Duration::ZERO).unwrap();
    drop(again);
}

pub(crate) fn the_probe_of_conditional_writes_passes(b: &dyn Backend) {
    b.probe().unwrap();
    b.probe().unwrap();
    assert!(
        b.list("", false).unwrap().is_empty(),
        "the probe leaves no object behind"
    );
}

#[test]
fn open_takes_a_local_path() {
    assert_eq!(
        repozo::backend::open("/x/repo").unwrap().describe(),
        "/x/repo"
    );
}

#[test]
fn a_missing_local_repository_lists_as_no_repository() {
    let err = Local::new("/nonexistent/repozo-repo")
        .list("", false)
        .unwrap_err();
    assert_eq!(err.exit_code(), repozo::error::EXIT_NO_REPOSITORY, "{err}");
}

pub(crate) fn write_whole_creates_then_replaces_and_read_optional_tells_absence(b: &dyn Backend) {
    b.write_whole("x.dat", &mut |w| w.write_all(b"first line\n"))
        .unwrap();
    b.write_whole("x.dat", &mut |w| w.write_all(b"replaced\n"))
        .unwrap();
    assert_eq!(b.read_optional("x.dat").unwrap().unwrap(), b"replaced\n");
    assert_eq!(b.read_optional("y.dat").unwrap(), None);
    assert_eq!(b.size_opened("x.dat").unwrap(), Some(9));
    assert_eq!(b.entry_size("x.dat").unwrap(), Some(9));
    assert_eq!(b.size_opened("y.dat").unwrap(), None);
}

pub(crate) fn append_creates_the_dat_then_adds_lines_in_order(b: &dyn Backend) {
    let held = b.lock(Duration::ZERO).unwrap();
    b.append("x.dat", "one\n", held.as_ref()).unwrap();
    b.append("x.dat", "two\n", held.as_ref()).unwrap();
    assert_eq!(b.read("x.dat").unwrap(), b"one\ntwo\n");
    b.sync().unwrap();
}

pub(crate) fn delete_says_an_object_that_was_there_was_there(b: &dyn Backend) {
    b.put_if_absent("x.fs", b"x").unwrap();
    assert!(b.delete("x.fs").unwrap());
    // A backend that can tell says `false` for a missing one; S3 cannot.
    let _ = b.delete("x.fs").unwrap();
}

pub(crate) fn the_repository_listing_names_every_file_at_the_top_and_nothing_below(
    b: &dyn Backend,
) {
    b.put_if_absent("2026-01-01-00-00-00.fs", b"a").unwrap();
    b.put_if_absent("2026-01-01-00-00-00.dat", b"b").unwrap();
    b.put_if_absent("blobs/objects/ab/c", b"c").unwrap();
    let mut names: Vec<String> = b
        .list_names()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| repozo::names::is_data_file(n) || repozo::names::is_meta_file(n))
        .collect();
    names.sort();
    assert_eq!(names, ["2026-01-01-00-00-00.dat", "2026-01-01-00-00-00.fs"]);
    assert!(
        b.list_names()
            .unwrap()
            .iter()
            .all(|(n, _)| !n.contains('/'))
    );
}

pub(crate) fn content_addressed_objects_are_stored_once_and_swept_when_unreferenced(
    b: &dyn Backend,
) {
    use repozo::backend::objects::{SMALL_OBJECT, object_name};
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let large = dir.path().join("large");
    std::fs::write(&small, b"same").unwrap();
    // Over the size a put-each writer reads into memory: streamed.
    std::fs::write(&large, pattern(SMALL_OBJECT as usize + 4097)).unwrap();
    let mut buf = vec![0; 1 << 16];
    let (s1, s2, l) = {
        let w = b.object_writer().unwrap();
        let open = |p: &std::path::Path| std::fs::File::open(p).unwrap();
        let s1 = w.put(&mut open(&small), &small, &mut buf).unwrap();
        let s2 = w.put(&mut open(&small), &small, &mut buf).unwrap();
        let l = w.put(&mut open(&large), &large, &mut buf).unwrap();
        w.commit().unwrap();
        (s1, s2, l)
    };
    assert!(s1.new && !s2.new && l.new);
    assert_eq!(s1.hash, s2.hash);
    assert_eq!(b.read(&object_name(&s1.hash)).unwrap(), b"same");
    assert_eq!(b.size(&object_name(&l.hash)).unwrap(), Some(l.size));
    let keep = [l.hash].into_iter().collect();
    assert_eq!(b.sweep_objects(&keep).unwrap(), (1, 4));
    assert_eq!(b.size(&object_name(&s1.hash)).unwrap(), None);
    let left: Vec<String> = b
        .list("blobs/", true)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(left, [object_name(&l.hash)], "nothing else is left behind");
}

#[test]
fn a_local_directory_in_the_way_of_a_name_exists_and_cannot_be_sized() {
    let f = local();
    let b = &*f.backend;
    let dir = std::path::Path::new(&b.describe()).join("2026-01-01-00-00-00.fs");
    std::fs::create_dir(&dir).unwrap();
    assert!(b.exists("2026-01-01-00-00-00.fs").unwrap());
    let err = b.size("2026-01-01-00-00-00.fs").unwrap_err();
    assert!(err.to_string().contains("Is a directory"), "{err}");
    assert!(
        b.list_names()
            .unwrap()
            .iter()
            .any(|(n, _)| n == "2026-01-01-00-00-00.fs"),
        "the repository listing names it, as os.listdir does, so readers refuse it by name"
    );
}

#[test]
fn a_local_delete_of_a_missing_file_says_it_was_not_there_and_leftovers_are_removed() {
    let f = local();
    let b = &*f.backend;
    assert!(!b.delete("x.fs").unwrap());
    let leftover = "2026-01-01-00-00-00.fs.tmp-1-2";
    b.put_if_absent(leftover, b"half").unwrap();
    assert!(b.remove_leftover(leftover).unwrap());
    assert!(!b.exists(leftover).unwrap());
}
