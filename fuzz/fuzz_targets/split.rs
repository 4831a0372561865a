//! Shared by the targets: the first input byte chooses how the rest is cut
//! into reads (0: one byte per read; n: pieces of 1..=n bytes from a small
//! PRNG seeded by the input), so the fuzzer explores read boundaries too.

/// Splits `input` into (reads, data): `data` is the input after its first
/// byte and `reads` are consecutive pieces of it covering all of it.
pub fn reads(input: &[u8]) -> Option<(Vec<&[u8]>, &[u8])> {
    let (&control, data) = input.split_first()?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ data.len() as u64 ^ (u64::from(control) << 32);
    for &b in data.iter().take(16) {
        seed = seed.rotate_left(5) ^ u64::from(b);
    }
    let mut pieces = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len = if control == 0 {
            1
        } else {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            1 + (seed % u64::from(control)) as usize
        };
        let (piece, tail) = rest.split_at(len.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    Some((pieces, data))
}
