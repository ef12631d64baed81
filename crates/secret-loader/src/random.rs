//! Random bytes straight from the kernel (`getrandom(2)`), for message ids, data keys, IVs and
//! temporary file names.
//!
//! Not AWS-LC's DRBG: its first use in a process seeds a tree of DRBGs with CPU-jitter entropy,
//! which took 20.5 ms here (measured), and envelopes that need no signature otherwise never
//! touch it. The signed suite's ECDSA still does (key generation and the signature nonce).

use std::io;

/// Fills `buf` with random bytes from the kernel.
pub(crate) fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        filled +=
            rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(())
}
