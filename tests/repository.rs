//! Choosing and refusing images in real repository directories. The host
//! needs no fs-verity: without it every file measures as "no fs-verity",
//! which is exactly what the refusals below are about.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use veriroot::boot::cmdline::{Cmdline, ImageRef};
use veriroot::boot::disk::DiskProblem;
use veriroot::boot::repository::{select_image, RepoError, Repository};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn refs(cmdline: &str) -> Vec<ImageRef> {
    Cmdline::parse(cmdline).image_refs().unwrap()
}

/// A repository with `meta.json` and an image named `name` (not a real
/// EROFS: nothing here mounts it).
fn repo_with(dir: &Path, meta: &str, name: &str) -> Repository {
    let repo = dir.join("composefs");
    fs::create_dir_all(repo.join("objects/12")).unwrap();
    fs::create_dir_all(repo.join("images")).unwrap();
    fs::write(repo.join("meta.json"), meta).unwrap();
    fs::write(repo.join("objects/12/3456"), b"not an erofs image").unwrap();
    symlink("../objects/12/3456", repo.join("images").join(name)).unwrap();
    Repository::open_on_disk(dir).unwrap()
}

const META256: &str = r#"{"version":1,"algorithm":"fsverity-sha256-12"}"#;

#[test]
fn first_existing_image_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, B);
    let image = select_image(&repo, &refs(&format!("composefs=?{A} composefs=?{B}"))).unwrap();
    assert_eq!(image.image_ref.digest.to_hex(), B);
    assert!(image.path.ends_with(format!("images/{B}")));
}

#[test]
fn no_existing_image_names_every_path_tried() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, "cc");
    let err = select_image(
        &repo,
        &refs(&format!("composefs={A} composefs.digest=v1-sha256-12:{B}")),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, RepoError::NoImage { ref tried } if tried.len() == 2),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("images/{A}")) && msg.contains(&format!("images/{B}")),
        "{msg}"
    );
}

#[test]
fn secure_boot_refuses_a_repository_without_fs_verity() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, A);
    let err = select_image(&repo, &refs(&format!("composefs={A}"))).unwrap_err();
    assert!(matches!(err, RepoError::MetaNoVerity { .. }), "{err}");
    assert!(err.to_string().contains("veriroot enable-verity"), "{err}");
}

#[test]
fn secure_boot_refuses_a_repository_without_meta_json() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, A);
    fs::remove_file(repo.meta_path()).unwrap();
    let err = select_image(&repo, &refs(&format!("composefs={A}"))).unwrap_err();
    assert!(matches!(err, RepoError::MetaMissing { .. }), "{err}");
}

#[test]
fn insecure_boot_accepts_missing_fs_verity() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, A);
    let image = select_image(&repo, &refs(&format!("composefs=?{A}"))).unwrap();
    assert!(image.measured.is_err());
}

#[test]
fn a_later_candidate_never_replaces_a_refused_one() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, A);
    let other = tmp.path().join("composefs/images").join(B);
    symlink("../objects/12/3456", other).unwrap();
    // A exists and is refused (secure, no fs-verity): B must not be tried.
    let err = select_image(&repo, &refs(&format!("composefs={A} composefs=?{B}"))).unwrap_err();
    assert!(matches!(err, RepoError::MetaNoVerity { .. }), "{err}");
}

#[test]
fn algorithm_must_match_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(
        tmp.path(),
        r#"{"version":1,"algorithm":"fsverity-sha512-12"}"#,
        A,
    );
    let err = select_image(&repo, &refs(&format!("composefs=?{A}"))).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RepoError::AlgorithmMismatch { .. }), "{msg}");
    assert!(msg.contains("fsverity-sha512-12"), "{msg}");
}

#[test]
fn newer_repository_format_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(
        tmp.path(),
        r#"{"version":2,"algorithm":"fsverity-sha256-12"}"#,
        A,
    );
    let err = select_image(&repo, &refs(&format!("composefs=?{A}"))).unwrap_err();
    assert!(
        matches!(err, RepoError::MetaVersion { found: 2, .. }),
        "{err}"
    );
}

#[test]
fn an_image_that_is_a_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, "x");
    fs::create_dir(tmp.path().join("composefs/images").join(A)).unwrap();
    let err = select_image(&repo, &refs(&format!("composefs=?{A}"))).unwrap_err();
    assert!(
        matches!(err, RepoError::Image(ref e) if e.problem == DiskProblem::NotAFile("a directory")),
        "{err}"
    );
}

// The disk's owner is the adversary: nothing is followed out of place,
// nothing blocks, every refusal names the path and what is wrong.

#[test]
fn an_image_link_out_of_the_repository_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, "x");
    fs::write(tmp.path().join("evil.erofs"), b"").unwrap();
    symlink(
        "../../evil.erofs",
        tmp.path().join("composefs/images").join(A),
    )
    .unwrap();
    let err = select_image(&repo, &refs(&format!("composefs=?{A}"))).unwrap_err();
    assert!(
        matches!(err, RepoError::Image(ref e) if e.problem == DiskProblem::Escapes),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("images/{A}")), "{err}");
}

#[test]
fn an_image_that_is_a_fifo_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, "x");
    let fifo = tmp.path().join("composefs/objects/12/fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    symlink(
        "../objects/12/fifo",
        tmp.path().join("composefs/images").join(A),
    )
    .unwrap();
    let err = select_image(&repo, &refs(&format!("composefs=?{A}"))).unwrap_err();
    assert!(
        matches!(err, RepoError::Image(ref e) if e.problem == DiskProblem::NotAFile("a FIFO")),
        "{err}"
    );
}

#[test]
fn meta_json_as_a_fifo_or_a_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, B);
    let meta = tmp.path().join("composefs/meta.json");
    fs::remove_file(&meta).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &meta,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let err = select_image(&repo, &refs(&format!("composefs={B}"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} is a FIFO, not a regular file", meta.display())
    );
    fs::remove_file(&meta).unwrap();
    fs::write(tmp.path().join("meta.json"), META256).unwrap();
    symlink("../meta.json", &meta).unwrap();
    let err = select_image(&repo, &refs(&format!("composefs={B}"))).unwrap_err();
    assert!(
        matches!(err, RepoError::MetaRead(ref e) if e.problem == DiskProblem::Symlink),
        "{err}"
    );
}

#[test]
fn a_huge_meta_json_is_refused_before_it_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo_with(tmp.path(), META256, B);
    let meta = fs::OpenOptions::new()
        .write(true)
        .open(tmp.path().join("composefs/meta.json"))
        .unwrap();
    meta.set_len(4 << 30).unwrap(); // sparse: 4 GiB of nothing
    let err = select_image(&repo, &refs(&format!("composefs={B}"))).unwrap_err();
    assert!(
        matches!(err, RepoError::MetaRead(ref e) if matches!(e.problem, DiskProblem::TooLarge { size, .. } if size == 4 << 30)),
        "{err}"
    );
}

#[test]
fn a_symlinked_repository_or_object_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    repo_with(tmp.path(), META256, B);
    fs::rename(tmp.path().join("composefs"), tmp.path().join("real")).unwrap();
    symlink("real", tmp.path().join("composefs")).unwrap();
    let err = Repository::open_on_disk(tmp.path()).err().unwrap();
    assert!(
        matches!(err, RepoError::Open(ref e) if e.problem == DiskProblem::Symlink),
        "{err}"
    );
    fs::remove_file(tmp.path().join("composefs")).unwrap();
    fs::rename(tmp.path().join("real"), tmp.path().join("composefs")).unwrap();
    let objects = tmp.path().join("composefs/objects");
    fs::rename(&objects, tmp.path().join("objects")).unwrap();
    symlink("../objects", &objects).unwrap();
    let err = Repository::open_on_disk(tmp.path())
        .unwrap()
        .objects()
        .unwrap_err();
    assert!(
        matches!(err, RepoError::Objects(ref e) if e.problem == DiskProblem::Symlink),
        "{err}"
    );
}

#[test]
fn missing_repository_says_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Repository::open_on_disk(tmp.path()).err().unwrap();
    assert!(
        err.to_string().contains(&format!(
            "{}/composefs does not exist",
            tmp.path().display()
        )),
        "{err}"
    );
}
