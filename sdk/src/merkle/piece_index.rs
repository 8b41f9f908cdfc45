//! A liveness answer without hashing a whole chunk: one level of every chunk's piece tree kept
//! in memory, so that proving a piece reads and hashes only its group of [`PIECES_PER_GROUP`]
//! pieces (64 KiB) instead of the 1 MiB chunk.
//!
//! Why this level: a group is 16 aligned pieces, a perfect subtree of the piece tree (the
//! chunk's last group may be shorter, and then it is the tree's last subtree, built by the same
//! rule), so its root is a node of the chunk's tree and the proof is the group's path to that
//! node followed by that node's path among the chunk's groups: the same proof [`PieceTree`]
//! gives. Memory: 16 hashes per MiB of model (1/2048 of the file); time: 1/16 of a chunk's
//! hashing per answer.
//!
//! The piece's bytes still come from the file at every answer, and its group must still hash to
//! the node recorded at start-up: a file changed since then is not answered from.

use std::{
    fs::File,
    io::{Seek, SeekFrom},
    path::Path,
};

use alloy::primitives::B256;

use super::{
    CHUNK_SIZE, ModelTree, PIECE_SIZE, PIECES_PER_CHUNK, PieceProof, hash_piece, hash_piece_node,
    read_full, root_of, siblings_of,
};
use crate::{Error, Result};

/// Pieces in every group but a chunk's last: the level of the piece tree kept in memory.
pub const PIECES_PER_GROUP: usize = 16;

const GROUP_BYTES: usize = PIECES_PER_GROUP * PIECE_SIZE;
const GROUPS_PER_CHUNK: usize = PIECES_PER_CHUNK as usize / PIECES_PER_GROUP;

/// The group roots of every chunk of a model file: what proves any piece from one group read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceIndex {
    /// The roots of chunk `i`'s groups, `GROUPS_PER_CHUNK` per chunk in file order (the last
    /// chunk may have fewer).
    groups: Vec<B256>,
    /// The file's length in bytes.
    len: u64,
}

impl PieceIndex {
    /// Hashes the file at `path` chunk by chunk, as [`ModelTree::from_file`] does, keeping the
    /// group roots as well: the tree and the index of one read.
    pub fn from_file(
        path: impl AsRef<Path>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(ModelTree, Self)> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut buf = vec![0u8; CHUNK_SIZE];
        let chunks = len.div_ceil(CHUNK_SIZE as u64) as usize;
        let mut leaves = Vec::with_capacity(chunks);
        let mut groups = Vec::with_capacity(chunks * GROUPS_PER_CHUNK);
        let mut done = 0u64;
        loop {
            let n = read_full(&mut file, &mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            let roots: Vec<B256> = buf[..n].chunks(GROUP_BYTES).map(group_root).collect();
            leaves.push(root_of(&roots, hash_piece_node));
            groups.extend(roots);
            done += n as u64;
            progress(done, len);
        }
        if done != len {
            return Err(Error::ModelProof(format!(
                "{} changed while it was hashed ({len} bytes, then {done})",
                path.display()
            )));
        }
        Ok((ModelTree::from_leaves(leaves)?, Self { groups, len }))
    }

    /// Number of chunks indexed.
    pub fn chunk_count(&self) -> u64 {
        self.len.div_ceil(CHUNK_SIZE as u64)
    }

    /// Pieces in chunk `chunk` ([`PIECES_PER_CHUNK`] for every chunk but the last; 0 past the
    /// end).
    pub fn piece_count(&self, chunk: u64) -> u64 {
        let start = chunk * CHUNK_SIZE as u64;
        let bytes = self.len.saturating_sub(start).min(CHUNK_SIZE as u64);
        bytes.div_ceil(PIECE_SIZE as u64)
    }

    /// The group roots of chunk `chunk`.
    fn groups_of(&self, chunk: u64) -> &[B256] {
        let start = chunk as usize * GROUPS_PER_CHUNK;
        let count = self.piece_count(chunk).div_ceil(PIECES_PER_GROUP as u64) as usize;
        &self.groups[start..start + count]
    }

    /// Piece `piece` of chunk `chunk` read from the file at `path`, with its path to the chunk
    /// leaf: the proof [`PieceTree::proof`](super::PieceTree::proof) gives, from a read of the
    /// piece's group. A group that no longer hashes to its root at indexing is an error naming
    /// the chunk.
    pub fn prove(&self, path: impl AsRef<Path>, chunk: u64, piece: u64) -> Result<PieceProof> {
        let path = path.as_ref();
        if chunk >= self.chunk_count() {
            return Err(Error::ModelProof(format!(
                "chunk {chunk} out of range: the file has {}",
                self.chunk_count()
            )));
        }
        let piece_count = self.piece_count(chunk);
        if piece >= piece_count {
            return Err(Error::ModelProof(format!(
                "piece {piece} out of range: the chunk has {piece_count}"
            )));
        }
        let group = piece as usize / PIECES_PER_GROUP;
        let offset = chunk * CHUNK_SIZE as u64 + (group * GROUP_BYTES) as u64;
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(path, e))?;
        let want = (self.len - offset).min(GROUP_BYTES as u64) as usize;
        let mut bytes = vec![0u8; want];
        let n = read_full(&mut file, &mut bytes).map_err(|e| Error::io(path, e))?;
        let groups = self.groups_of(chunk);
        let leaves: Vec<B256> = bytes[..n].chunks(PIECE_SIZE).map(hash_piece).collect();
        if n != want || root_of(&leaves, hash_piece_node) != groups[group] {
            return Err(Error::ModelProof(format!(
                "chunk {chunk} of {} changed since start-up",
                path.display()
            )));
        }
        let at = piece as usize % PIECES_PER_GROUP;
        let mut siblings = siblings_of(&leaves, at, hash_piece_node);
        siblings.extend(siblings_of(groups, group, hash_piece_node));
        let start = at * PIECE_SIZE;
        bytes.truncate(n.min(start + PIECE_SIZE));
        Ok(PieceProof {
            index: piece,
            piece_count,
            bytes: bytes.split_off(start),
            siblings,
        })
    }
}

fn group_root(group: &[u8]) -> B256 {
    let leaves: Vec<B256> = group.chunks(PIECE_SIZE).map(hash_piece).collect();
    root_of(&leaves, hash_piece_node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{PieceTree, read_chunk};

    /// Deterministic bytes (an LCG), so a failure names a size that reproduces.
    fn bytes(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect()
    }

    /// Files ending in every shape a last chunk can have: one byte, a partial piece, a partial
    /// group, a whole number of groups, a full chunk, and a second chunk of a few pieces.
    const SIZES: [usize; 7] = [
        1,
        PIECE_SIZE - 1,
        5 * PIECE_SIZE + 17,
        GROUP_BYTES,
        3 * GROUP_BYTES + 4 * PIECE_SIZE,
        CHUNK_SIZE,
        CHUNK_SIZE + 17 * PIECE_SIZE + 1,
    ];

    #[test]
    fn every_piece_is_proved_as_the_chunks_piece_tree_proves_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        for size in SIZES {
            let path = dir.path().join(format!("w{size}"));
            std::fs::write(&path, bytes(size)).expect("write");
            let (tree, index) = PieceIndex::from_file(&path, |_, _| {}).expect("index");
            assert_eq!(
                tree,
                ModelTree::from_file(&path, |_, _| {}).expect("tree"),
                "{size} bytes"
            );
            for chunk in 0..index.chunk_count() {
                let data = read_chunk(&path, chunk).expect("chunk");
                let pieces = PieceTree::new(&data).expect("pieces");
                for piece in 0..pieces.piece_count() {
                    let proof = index.prove(&path, chunk, piece).expect("proof");
                    assert_eq!(
                        proof,
                        pieces.proof(piece).expect("reference proof"),
                        "{size} bytes, chunk {chunk}, piece {piece}"
                    );
                    assert_eq!(
                        proof.compute_chunk_leaf().expect("leaf"),
                        tree.leaves()[chunk as usize]
                    );
                }
            }
        }
    }

    #[test]
    fn a_changed_group_or_a_bad_index_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w");
        let mut data = bytes(CHUNK_SIZE + 3 * PIECE_SIZE);
        std::fs::write(&path, &data).expect("write");
        let (_, index) = PieceIndex::from_file(&path, |_, _| {}).expect("index");
        let out_of_range = index.prove(&path, 2, 0).expect_err("refused").to_string();
        assert!(
            out_of_range.contains("chunk 2 out of range"),
            "{out_of_range}"
        );
        let no_piece = index.prove(&path, 1, 3).expect_err("refused").to_string();
        assert!(no_piece.contains("piece 3 out of range"), "{no_piece}");
        // One byte changed in the group of piece 20 (pieces 16..32) of chunk 0.
        data[20 * PIECE_SIZE + 5] ^= 1;
        std::fs::write(&path, &data).expect("write");
        let changed = index.prove(&path, 0, 17).expect_err("refused").to_string();
        assert!(changed.contains("chunk 0 of"), "{changed}");
        assert!(changed.contains("changed since start-up"), "{changed}");
        // Another group of the same chunk is still answered.
        index.prove(&path, 0, 40).expect("an unchanged group");
    }
}
