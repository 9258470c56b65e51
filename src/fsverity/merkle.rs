//! The fs-verity file digest computed in userspace: what
//! `FS_IOC_MEASURE_VERITY` returns once fs-verity is enabled, and what
//! `fsverity digest` prints, for 4096-byte blocks and no salt (the only
//! parameters composefs uses). No kernel support is needed.
//!
//! The digest (Documentation/filesystems/fsverity.rst, "File digest
//! computation"):
//! - the data is split into 4 KiB blocks, the last one zero-padded; each
//!   block is hashed, and the hashes, concatenated, are split into 4 KiB
//!   blocks (the last zero-padded) to be hashed in turn, level by level,
//!   until a single block remains: the hash of that block is the root hash.
//!   A file of one block has the hash of that block as root hash; an empty
//!   file has all zeros;
//! - the digest is the hash of the 256-byte `struct fsverity_descriptor`
//!   (version 1, hash algorithm, log2 block size 12, salt size 0, the data
//!   size as le64 at offset 8, the root hash zero-padded to 64 bytes at
//!   offset 16, the rest zero).
//!
//! Almost all the work is hashing the data blocks, and those hashes are
//! independent: [`digest_file`] hashes a large regular file's blocks on all
//! CPUs with positioned reads, then builds the (128 or 64 times smaller)
//! upper levels on the calling thread. sha2 uses SHA-NI for SHA-256 when the
//! CPU has it; SHA-512, which has no such instructions on most CPUs, hashes
//! four data blocks at once in AVX2 lanes (sha512x4/) when the CPU has
//! AVX2. Both detected at run time.

use std::fs::File;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use sha2::{Sha256, Sha512};

use crate::fsverity::digest::{Algorithm, Digest};

/// Data and Merkle tree block size: 4 KiB, as composefs uses.
pub const BLOCK_SIZE: usize = 4096;
const LOG_BLOCK_SIZE: u8 = 12;
/// The largest hash (SHA-512); `root_hash` in the descriptor has this size.
const MAX_HASH: usize = 64;
const DESCRIPTOR_SIZE: usize = 256;

/// Regular files smaller than this are hashed on the calling thread only:
/// below it a second thread saves little (measured on 2 vCPUs: equal at
/// 2 MiB, 10% faster at 4 MiB, 17% at 8 MiB; see docs/benchmarks.md).
pub const PARALLEL_MIN: u64 = 4 << 20;
/// Unit of work handed to a thread: 64 blocks, read with one `pread`.
const JOB: usize = 256 * 1024;
/// The file is hashed in rounds of this much data, so the leaf hashes kept
/// in memory stay small (2 MiB for SHA-256) whatever the file size.
const ROUND: u64 = 256 << 20;
/// A cap, so that a large machine does not start a hundred threads per file.
const MAX_THREADS: usize = 16;

/// The fs-verity digest of everything `reader` yields, on this thread.
pub fn digest_reader(algorithm: Algorithm, reader: impl Read) -> io::Result<Digest> {
    match algorithm {
        Algorithm::Sha256 => stream::<Sha256>(algorithm, reader),
        Algorithm::Sha512 => stream::<Sha512>(algorithm, reader),
    }
}

/// The fs-verity digest of `data`.
#[cfg(test)]
pub fn digest_bytes(algorithm: Algorithm, data: &[u8]) -> Digest {
    digest_reader(algorithm, data).expect("reading a slice cannot fail")
}

/// The fs-verity digest of an open file's contents (from offset 0 for a
/// regular file, from where it stands for anything else, e.g. a pipe).
/// Regular files of at least [`PARALLEL_MIN`] bytes are hashed on every
/// available CPU.
pub fn digest_file(algorithm: Algorithm, file: &File) -> io::Result<Digest> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        // Pipes and devices have no useful size, directories fail on read.
        return digest_reader(algorithm, file);
    }
    let size = meta.len();
    let threads = if size < PARALLEL_MIN {
        1
    } else {
        cpus().min(MAX_THREADS)
    };
    digest_file_with(algorithm, file, size, threads, ROUND)
}

/// The CPUs this process may run on. Not `available_parallelism`, whose
/// cgroup quota parsing adds 8 KB to the binary.
fn cpus() -> usize {
    rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count().max(1) as usize)
}

/// The fs-verity digest of the file at `path`.
pub fn digest_path(algorithm: Algorithm, path: &Path) -> io::Result<Digest> {
    digest_file(algorithm, &File::open(path)?)
}

fn digest_file_with(
    algorithm: Algorithm,
    file: &File,
    size: u64,
    threads: usize,
    round: u64,
) -> io::Result<Digest> {
    match algorithm {
        Algorithm::Sha256 => positioned::<Sha256>(algorithm, file, size, threads, round),
        Algorithm::Sha512 => positioned::<Sha512>(algorithm, file, size, threads, round),
    }
}

/// A hash that can hash many whole blocks: one at a time by default.
trait BlockHash: sha2::Digest {
    /// Calls `out` with the hash of each [`BLOCK_SIZE`] block of `blocks`, in order.
    fn hash_each(blocks: &[u8], mut out: impl FnMut(&[u8])) {
        for block in blocks.chunks_exact(BLOCK_SIZE) {
            out(&Self::digest(block));
        }
    }
}

impl BlockHash for Sha256 {}

/// SHA-512 four blocks at a time in AVX2 lanes when the CPU has them
/// (sha512x4/: about twice sha2's speed per core, docs/benchmarks.md).
impl BlockHash for Sha512 {
    fn hash_each(blocks: &[u8], mut out: impl FnMut(&[u8])) {
        let mut quads = blocks.chunks_exact(4 * BLOCK_SIZE);
        for quad in quads.by_ref() {
            let b: [&[u8; BLOCK_SIZE]; 4] = std::array::from_fn(|i| {
                quad[i * BLOCK_SIZE..][..BLOCK_SIZE]
                    .try_into()
                    .expect("a block")
            });
            match veriroot_sha512x4::hash4(b) {
                Some(hashes) => hashes.iter().for_each(|h| out(h)),
                None => b
                    .iter()
                    .for_each(|b| out(&<Self as sha2::Digest>::digest(b))),
            }
        }
        for block in quads.remainder().chunks_exact(BLOCK_SIZE) {
            out(&<Self as sha2::Digest>::digest(block));
        }
    }
}

/// Hashes `buf[..len]` block by block, zero-padding the last block in
/// place (`buf` must have room up to the next block boundary).
fn hash_blocks<D: BlockHash>(buf: &mut [u8], len: usize, out: impl FnMut(&[u8])) {
    let padded = len.next_multiple_of(BLOCK_SIZE);
    buf[len..padded].fill(0);
    D::hash_each(&buf[..padded], out);
}

fn stream<D: BlockHash>(algorithm: Algorithm, mut reader: impl Read) -> io::Result<Digest> {
    let mut buf = vec![0; JOB];
    let mut tree = Tree::<D>::new();
    let mut size = 0u64;
    loop {
        let n = read_full(&mut reader, &mut buf)?;
        size += n as u64;
        hash_blocks::<D>(&mut buf, n, |h| tree.push(h));
        if n < buf.len() {
            return Ok(tree.finish(algorithm, size));
        }
    }
}

/// Reads until `buf` is full or the end of the data.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The first `size` bytes of a regular file: leaf hashes in rounds, each
/// round's blocks shared out to `threads` threads (this one included) in
/// jobs of [`JOB`] bytes, then fed in order to the upper levels.
fn positioned<D: BlockHash>(
    algorithm: Algorithm,
    file: &File,
    size: u64,
    threads: usize,
    round: u64,
) -> io::Result<Digest> {
    debug_assert!(round > 0 && round % JOB as u64 == 0);
    let hash_len = <D as sha2::Digest>::output_size();
    let mut tree = Tree::<D>::new();
    let mut leaves = Vec::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start + round);
        let blocks = (end - start).div_ceil(BLOCK_SIZE as u64) as usize;
        leaves.resize(blocks * hash_len, 0);
        leaf_hashes::<D>(file, start, end, &mut leaves, threads)?;
        for h in leaves.chunks_exact(hash_len) {
            tree.push(h);
        }
        start = end;
    }
    Ok(tree.finish(algorithm, size))
}

/// The hashes of the blocks of `file[start..end]` into `out` (`start` a
/// multiple of [`JOB`]).
fn leaf_hashes<D: BlockHash>(
    file: &File,
    start: u64,
    end: u64,
    out: &mut [u8],
    threads: usize,
) -> io::Result<()> {
    let hash_len = <D as sha2::Digest>::output_size();
    let jobs = Mutex::new(out.chunks_mut(JOB / BLOCK_SIZE * hash_len).enumerate());
    let threads = threads.min((end - start).div_ceil(JOB as u64) as usize);
    let work = || -> io::Result<()> {
        let mut buf = vec![0; JOB.min((end - start).next_multiple_of(BLOCK_SIZE as u64) as usize)];
        loop {
            let Some((i, out)) = jobs.lock().unwrap().next() else {
                return Ok(());
            };
            let from = start + (i * JOB) as u64;
            let to = end.min(from + JOB as u64);
            let result = hash_range::<D>(file, from, to, out, &mut buf);
            if result.is_err() {
                // Nobody else need start another job.
                jobs.lock().unwrap().by_ref().for_each(drop);
                return result;
            }
        }
    };
    if threads <= 1 {
        return work();
    }
    std::thread::scope(|s| {
        // A thread that cannot be started leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        let mine = work();
        helpers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .fold(mine, Result::and)
    })
}

/// The hashes of the blocks of `file[from..to]` (at most `buf.len()`
/// bytes, rounded up to a block) into `out`.
fn hash_range<D: BlockHash>(
    file: &File,
    from: u64,
    to: u64,
    out: &mut [u8],
    buf: &mut [u8],
) -> io::Result<()> {
    let len = (to - from) as usize;
    let mut n = 0;
    while n < len {
        match file.read_at(&mut buf[n..len], from + n as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was read",
                ))
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut hashes = out.chunks_exact_mut(<D as sha2::Digest>::output_size());
    hash_blocks::<D>(buf, len, |h| {
        hashes
            .next()
            .expect("room for every hash")
            .copy_from_slice(h)
    });
    Ok(())
}

/// The Merkle tree above the data blocks, built as their hashes arrive:
/// one partly filled block per level.
struct Tree<D> {
    levels: Vec<Level>,
    /// Data blocks hashed so far.
    leaves: u64,
    hash: PhantomData<D>,
}

struct Level {
    block: Vec<u8>,
    /// Bytes of `block` holding hashes.
    fill: usize,
    /// Blocks of this level completed (and hashed into the next).
    done: u64,
}

impl<D: sha2::Digest> Tree<D> {
    fn new() -> Self {
        Tree {
            levels: Vec::new(),
            leaves: 0,
            hash: PhantomData,
        }
    }

    /// Adds the hash of the next data block.
    fn push(&mut self, hash: &[u8]) {
        self.leaves += 1;
        self.push_at(0, hash);
    }

    fn push_at(&mut self, mut level: usize, hash: &[u8]) {
        let len = hash.len();
        let mut carry = [0; MAX_HASH];
        carry[..len].copy_from_slice(hash);
        loop {
            if level == self.levels.len() {
                self.levels.push(Level {
                    block: vec![0; BLOCK_SIZE],
                    fill: 0,
                    done: 0,
                });
            }
            let l = &mut self.levels[level];
            l.block[l.fill..l.fill + len].copy_from_slice(&carry[..len]);
            l.fill += len;
            if l.fill + len <= BLOCK_SIZE {
                return;
            }
            // Full: no room for another hash. Its hash goes one level up.
            l.block[l.fill..].fill(0);
            carry[..len].copy_from_slice(&D::digest(&l.block));
            l.fill = 0;
            l.done += 1;
            level += 1;
        }
    }

    /// The root hash: pads and hashes each level's last block, bottom up,
    /// until a level was made of a single block.
    fn root(mut self) -> Vec<u8> {
        let len = <D as sha2::Digest>::output_size();
        if self.leaves == 0 {
            return vec![0; len];
        }
        // Blocks below `level`: data blocks, then each level's.
        let mut below = self.leaves;
        let mut level = 0;
        loop {
            let l = &mut self.levels[level];
            if below == 1 {
                // One block below: its hash, alone on this level, is the root.
                return l.block[..len].to_vec();
            }
            if l.fill > 0 {
                l.block[l.fill..].fill(0);
                let hash = D::digest(&l.block);
                l.fill = 0;
                l.done += 1;
                self.push_at(level + 1, &hash);
            }
            below = self.levels[level].done;
            level += 1;
        }
    }

    /// The digest: the hash of the fs-verity descriptor.
    fn finish(self, algorithm: Algorithm, size: u64) -> Digest {
        let root = self.root();
        let mut descriptor = [0u8; DESCRIPTOR_SIZE];
        descriptor[0] = 1; // version
        descriptor[1] = algorithm.kernel_id() as u8;
        descriptor[2] = LOG_BLOCK_SIZE;
        // [3] salt_size 0, [4..8] reserved
        descriptor[8..16].copy_from_slice(&size.to_le_bytes());
        descriptor[16..16 + root.len()].copy_from_slice(&root);
        // [80..112] salt, [112..256] reserved: zero
        Digest::new(algorithm, &D::digest(descriptor)).expect("the algorithm's digest length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;
    use std::io::Write;

    /// The test data: an xorshift64 (13, 7, 17) stream from seed
    /// 0x9E3779B97F4A7C15, each state written little-endian. A file of `n`
    /// bytes is the stream's first `n` bytes. The same stream from Python:
    ///   s = 0x9E3779B97F4A7C15; M = 2**64 - 1
    ///   per word: s ^= (s << 13) & M; s ^= s >> 7; s ^= (s << 17) & M;
    ///   out += struct.pack('<Q', s)
    fn data(n: usize) -> Vec<u8> {
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            out.extend_from_slice(&s.to_le_bytes());
        }
        out.truncate(n);
        out
    }

    const BIG: usize = 128 * 128 * BLOCK_SIZE + 5;

    /// (size, sha256, sha512), from fsverity-utils 1.5 on files holding
    /// `data(size)`: `fsverity digest --hash-alg=sha256 FILE` and
    /// `fsverity digest --hash-alg=sha512 FILE`.
    const EXPECTED: &[(usize, &str, &str)] = &[
        (
            0,
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95",
            "ccf9e5aea1c2a64efa2f2354a6024b90dffde6bbc017825045dce374474e13d1\
             0adb9dadcc6ca8e17a3c075fbd31336e8f266ae6fa93a6c3bed66f9e784e5abf",
        ),
        (
            1,
            "9a3814b9f4d032cbb46d8ff838aeeae37d81b2dee4b6faa301c1ba4d1a9517f8",
            "b09db9df33b4c0ca9221c6d636be3563fad27c587c4aef280262cc5708e6701f\
             39ed9ec188348803cd30b766a8ba3c9af98879eb8c007707f195d2e84fdf4a2d",
        ),
        (
            4096,
            "c2636941d0d87f2aef25a1da222796a3ec1d4a2c51907d4ba7d6479939c3a16a",
            "f5cf008084c4c1f83b6d5ed26f8e0486009206878fd6956a6537563b20add9d5\
             40041396703c433685995208cd35206b857abd781a5aa9f5d61ffe8a2f412a1a",
        ),
        (
            4097,
            "9a263d861261e9479271a06eac3630977da48f0092400627976001f2bdbb6344",
            "dfb91a248168ea307445f9d25ab8060b723f7fdcad6b35799166e84ef7c098dc\
             84e9520a6b7a67b5992431d3ef1509f35792c7d21e5fc9a051120c41f3d31911",
        ),
        // 64 blocks: one full hash block of SHA-512 leaves.
        (
            64 * 4096,
            "e072eff5cfdc0a4af95776a3a9eb03181f72ebe5fd50547b718b0550fcec8880",
            "d77f77cf8614d0e50608ad2db13875cae96ecd8e1fcad86c9abea9f5ee7eca99\
             10f608ffde52d9edd799e74f69fe90c520d74050664bbaf5ca6a1953b83b020f",
        ),
        (
            64 * 4096 + 1,
            "b85eba61f34cbdbecc4b6fb3e58dbffe5738b747579ba2bd109607c5e12e95c0",
            "172444ff02ebd169ccc975ee5b3accaa740b4b66b715764d5bf1a5c6e14e28d6\
             ec1e6225948bd0e6c8a15602e0ec5e78d702985f1c1c5ff118e672fd094aa306",
        ),
        // 128 blocks: one full hash block of SHA-256 leaves.
        (
            128 * 4096,
            "02593c49f86db704453d89db762c7b618c18d158500ae30c14f283973c1ed71d",
            "d56f21de4add0fe96a6760b8b9d87dc138b6819aae27a5e94161d214aef9675b\
             836163f7179d358487b3b6319fb30b97e58091802cb174f2666eee5be5585913",
        ),
        (
            128 * 4096 + 1,
            "802fa7fcb05cdb1e2848e0ee3fa6e277e392a709bdef0dd5c88533b84f4b1147",
            "18eda174ead5d0618aa483a908bf07be6d15488d238c0589265c7d5e11dfacf1\
             9bde1005cc2c2890ce380f6f1e981267385c649d9f5bd4abc83675200bb09fc6",
        ),
        // Four levels for either hash: 16385 data blocks.
        (
            BIG,
            "1df3cf50a1ebc71b9c30a5a52c351ed61da66e1fb29b634c5501baaf280bbacd",
            "cff6592cf40e379efaa8a6f23da047636d4295ab2e4ab870a75eba40872b3c42\
             bf21f519575086f4229d854a95419c4a893ee27bf2b257cfbcf098775e43a79c",
        ),
    ];

    fn expected(alg: Algorithm, size: usize) -> Digest {
        let &(_, sha256, sha512) = EXPECTED.iter().find(|e| e.0 == size).unwrap();
        let hex = match alg {
            Algorithm::Sha256 => sha256,
            Algorithm::Sha512 => sha512,
        };
        Digest::from_hex_as(alg, hex).unwrap()
    }

    const ALGS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    #[test]
    fn streamed_matches_fsverity_utils() {
        let big = data(BIG);
        for alg in ALGS {
            for &(size, _, _) in EXPECTED {
                let d = digest_bytes(alg, &big[..size]);
                assert_eq!(d.algorithm(), alg);
                assert_eq!(d, expected(alg, size), "{alg}, {size} bytes");
            }
        }
    }

    /// A reader that hands out odd-sized pieces: block assembly must not
    /// depend on how `read` splits the data.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 5000 + 777;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn short_reads_change_nothing() {
        let d = data(128 * 4096 + 1);
        for alg in ALGS {
            let got = digest_reader(alg, Trickle(&d, 0)).unwrap();
            assert_eq!(got, expected(alg, d.len()));
        }
    }

    fn temp_file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn files_match_fsverity_utils() {
        let big = data(BIG);
        for &(size, _, _) in EXPECTED {
            let f = temp_file(&big[..size]);
            for alg in ALGS {
                assert_eq!(
                    digest_file(alg, &f).unwrap(),
                    expected(alg, size),
                    "{alg}, {size} bytes"
                );
            }
        }
    }

    #[test]
    fn threads_and_rounds_change_nothing() {
        let big = data(BIG);
        let f = temp_file(&big);
        for alg in ALGS {
            // Many rounds, more threads than CPUs.
            let d = digest_file_with(alg, &f, BIG as u64, 3, 40 * JOB as u64).unwrap();
            assert_eq!(d, expected(alg, BIG), "{alg}");
        }
        // Rounds of one job, of several, not a multiple of a hash block's
        // worth of leaves; sizes that end inside a job, or below one job.
        for size in [9 * JOB + 4097, 3 * JOB, JOB - 1, 1] {
            let f = temp_file(&big[..size]);
            for alg in ALGS {
                let want = digest_bytes(alg, &big[..size]);
                for round in [JOB as u64, 3 * JOB as u64, 40 * JOB as u64] {
                    for threads in [1, 2, 3, 7] {
                        let d = digest_file_with(alg, &f, size as u64, threads, round).unwrap();
                        assert_eq!(d, want, "{alg} {size} {round} {threads}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_file_that_shrank_is_an_error() {
        let f = temp_file(&data(10_000));
        for threads in [1, 2] {
            let e = digest_file_with(Algorithm::Sha256, &f, 3 * JOB as u64, threads, ROUND)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[test]
    fn paths_directories_and_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data(4097)).unwrap();
        assert_eq!(
            digest_path(Algorithm::Sha512, &path).unwrap(),
            expected(Algorithm::Sha512, 4097)
        );
        // A directory opens but cannot be read.
        let e = digest_path(Algorithm::Sha256, dir.path()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(21), "EISDIR: {e}");
        assert_eq!(
            digest_path(Algorithm::Sha256, &dir.path().join("missing"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn empty_file_descriptor_by_hand() {
        // The empty file: root hash all zeros, data_size 0.
        let mut descriptor = [0u8; 256];
        descriptor[..3].copy_from_slice(&[1, 1, 12]);
        let want = Sha256::digest(descriptor);
        assert_eq!(
            digest_bytes(Algorithm::Sha256, b"").as_bytes(),
            want.as_slice()
        );
        // One block: the root hash is that block's hash.
        let block = data(4096);
        descriptor[1] = 2;
        descriptor[8..16].copy_from_slice(&4096u64.to_le_bytes());
        descriptor[16..80].copy_from_slice(&Sha512::digest(&block));
        assert_eq!(
            digest_bytes(Algorithm::Sha512, &block).as_bytes(),
            Sha512::digest(descriptor).as_slice()
        );
    }
}
