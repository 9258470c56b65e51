//! SHA-512 of four independent 4096-byte blocks at once: the leaves and
//! tree blocks of an fs-verity Merkle tree are exactly such blocks, and
//! hashing four of them in the four 64-bit lanes of AVX2 registers
//! ("multi-buffer") does about twice the work per cycle of one SHA-512 at a
//! time, whose rounds are a chain of dependent scalar operations.
//!
//! [`hash4`] is the whole interface; it returns `None` on a CPU without
//! AVX2 (and on other architectures), where the caller hashes one block at
//! a time. The `unsafe` here is only the `std::arch` intrinsics and the
//! call into the `avx2`-enabled function after run-time detection.

/// The size of every block hashed here: fs-verity's 4 KiB blocks.
pub const BLOCK: usize = 4096;

/// The SHA-512 digests of four 4096-byte blocks, or `None` without AVX2.
pub fn hash4(blocks: [&[u8; BLOCK]; 4]) -> Option<[[u8; 64]; 4]> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return Some(unsafe { avx2::hash4(blocks) });
    }
    let _ = blocks;
    None
}

/// FIPS 180-4, 4.2.3.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const K: [u64; 80] = [
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
];

/// FIPS 180-4, 5.3.5.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const H0: [u64; 8] = [
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
    0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
];

#[cfg(target_arch = "x86_64")]
mod avx2 {
    // Since Rust 1.87 most intrinsics are safe inside an avx2 function;
    // the `unsafe` blocks keep the crate building with 1.80.
    #![allow(unused_unsafe)]
    use std::arch::x86_64::*;

    use super::{BLOCK, H0, K};

    /// 128-byte message blocks per 4 KiB block; a 4 KiB message is then
    /// padded with one more block, the same for every lane.
    const CHUNKS: usize = BLOCK / 128;

    #[inline(always)]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_add_epi64(a, b) }
    }

    #[inline(always)]
    unsafe fn xor(a: __m256i, b: __m256i) -> __m256i {
        unsafe { _mm256_xor_si256(a, b) }
    }

    /// Rotate right by R (L = 64 - R: const arithmetic is not stable).
    #[inline(always)]
    unsafe fn rotr<const R: i32, const L: i32>(x: __m256i) -> __m256i {
        unsafe { _mm256_or_si256(_mm256_srli_epi64::<R>(x), _mm256_slli_epi64::<L>(x)) }
    }

    #[inline(always)]
    unsafe fn big_sigma0(a: __m256i) -> __m256i {
        unsafe { xor(xor(rotr::<28, 36>(a), rotr::<34, 30>(a)), rotr::<39, 25>(a)) }
    }

    #[inline(always)]
    unsafe fn big_sigma1(e: __m256i) -> __m256i {
        unsafe { xor(xor(rotr::<14, 50>(e), rotr::<18, 46>(e)), rotr::<41, 23>(e)) }
    }

    #[inline(always)]
    unsafe fn small_sigma0(w: __m256i) -> __m256i {
        unsafe {
            xor(
                xor(rotr::<1, 63>(w), rotr::<8, 56>(w)),
                _mm256_srli_epi64::<7>(w),
            )
        }
    }

    #[inline(always)]
    unsafe fn small_sigma1(w: __m256i) -> __m256i {
        unsafe {
            xor(
                xor(rotr::<19, 45>(w), rotr::<61, 3>(w)),
                _mm256_srli_epi64::<6>(w),
            )
        }
    }

    /// The 80 rounds over message words produced by `word(t)` for t < 16.
    #[inline(always)]
    unsafe fn compress(state: &mut [__m256i; 8], word: impl Fn(usize) -> __m256i) {
        unsafe {
            let mut w = [_mm256_setzero_si256(); 16];
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
            for t in 0..80 {
                let wt = if t < 16 {
                    word(t)
                } else {
                    add(
                        add(small_sigma1(w[(t - 2) & 15]), w[(t - 7) & 15]),
                        add(small_sigma0(w[(t - 15) & 15]), w[t & 15]),
                    )
                };
                w[t & 15] = wt;
                let ch = xor(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g));
                let t1 = add(
                    add(add(h, big_sigma1(e)), add(ch, wt)),
                    _mm256_set1_epi64x(K[t] as i64),
                );
                let maj = _mm256_or_si256(
                    _mm256_and_si256(a, b),
                    _mm256_and_si256(c, _mm256_or_si256(a, b)),
                );
                let t2 = add(big_sigma0(a), maj);
                h = g;
                g = f;
                f = e;
                e = add(d, t1);
                d = c;
                c = b;
                b = a;
                a = add(t1, t2);
            }
            for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
                *s = add(*s, v);
            }
        }
    }

    /// Lane i of the result is the SHA-512 of `blocks[i]`.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn hash4(blocks: [&[u8; BLOCK]; 4]) -> [[u8; 64]; 4] {
        unsafe {
            let mut state = H0.map(|h| _mm256_set1_epi64x(h as i64));
            for chunk in 0..CHUNKS {
                let at = |lane: usize, t: usize| {
                    let i = chunk * 128 + t * 8;
                    let bytes: [u8; 8] = blocks[lane][i..i + 8].try_into().expect("8 bytes");
                    u64::from_be_bytes(bytes) as i64
                };
                compress(&mut state, |t| {
                    _mm256_set_epi64x(at(3, t), at(2, t), at(1, t), at(0, t))
                });
            }
            // The padding block of a 4096-byte message: 0x80, zeros, and
            // the length in bits (32768) as a 128-bit big-endian number.
            compress(&mut state, |t| {
                _mm256_set1_epi64x(match t {
                    0 => 1 << 63,
                    15 => (BLOCK * 8) as i64,
                    _ => 0,
                })
            });
            let mut lanes = [[0u64; 4]; 8];
            for (word, v) in lanes.iter_mut().zip(state) {
                _mm256_storeu_si256(word.as_mut_ptr().cast(), v);
            }
            let mut out = [[0u8; 64]; 4];
            for (lane, digest) in out.iter_mut().enumerate() {
                for (word, bytes) in lanes.iter().zip(digest.chunks_exact_mut(8)) {
                    bytes.copy_from_slice(&word[lane].to_be_bytes());
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha512};

    /// Deterministic, lane-distinct contents (xorshift).
    fn blocks(seed: u64) -> Vec<[u8; BLOCK]> {
        let mut x = seed | 1;
        (0..4)
            .map(|_| {
                let mut b = [0u8; BLOCK];
                for byte in b.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *byte = x as u8;
                }
                b
            })
            .collect()
    }

    #[test]
    fn lanes_equal_sha512() {
        if hash4([&[0; BLOCK]; 4]).is_none() {
            eprintln!("no AVX2 here: nothing to compare");
            return;
        }
        for seed in 1..50 {
            let b = blocks(seed);
            let got = hash4([&b[0], &b[1], &b[2], &b[3]]).unwrap();
            for (lane, block) in b.iter().enumerate() {
                assert_eq!(
                    got[lane][..],
                    Sha512::digest(block)[..],
                    "seed {seed} lane {lane}"
                );
            }
        }
    }

    #[test]
    fn zero_block_known_answer() {
        // sha512 of 4096 zero bytes (`head -c 4096 /dev/zero | sha512sum`).
        let Some(got) = hash4([&[0; BLOCK]; 4]) else {
            return;
        };
        let hex: String = got[2].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, ZERO_4096);
    }

    const ZERO_4096: &str = "2d23913d3759ef01704a86b4bee3ac8a29002313ecc98a7424425a78170f219577822fd77e4ae96313547696ad7d5949b58e12d5063ef2ee063b595740a3a12d";
}
