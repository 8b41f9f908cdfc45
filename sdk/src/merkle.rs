//! Model-file Merkle trees: the commitment a model is registered under, and chunk proofs.
//!
//! The rule (the same as `contracts/libraries/ModelMerkle.sol`): the file is cut into chunks of
//! [`CHUNK_SIZE`] bytes (the last one may be shorter); each leaf is `keccak256(chunk)`; a parent is
//! `keccak256(left || right)` in file order (pairs are not sorted); a node without a right
//! neighbour moves up unchanged; the root of a one-chunk file is its leaf. A proof lists the
//! siblings from the leaf up, skipping the levels where the node moved up alone, so checking it
//! needs the leaf's index and the number of leaves, which the registry stores with the root.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use alloy::primitives::{B256, keccak256};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Size of one model chunk: 1 MiB.
pub const CHUNK_SIZE: usize = 1 << 20;

/// The leaves of a model file's Merkle tree (one 32-byte hash per 1 MiB chunk).
///
/// Holding only the leaves keeps memory at 32 bytes per MiB of model; inner nodes are recomputed
/// when a proof is asked for, which costs one pass over the leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTree {
    leaves: Vec<B256>,
}

/// A chunk's proof of membership in a model's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkProof {
    /// Index of the chunk in the file.
    pub index: u64,
    /// Number of chunks (leaves) in the file.
    pub leaf_count: u64,
    /// keccak256 of the chunk.
    pub leaf: B256,
    /// Sibling hashes from the leaf level up.
    pub siblings: Vec<B256>,
}

impl ModelTree {
    /// Hashes the file at `path` chunk by chunk, holding one chunk in memory at a time.
    ///
    /// `progress(done_bytes, total_bytes)` is called after every chunk.
    pub fn from_file(path: impl AsRef<Path>, mut progress: impl FnMut(u64, u64)) -> Result<Self> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let total = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut buf = vec![0u8; CHUNK_SIZE];
        let mut leaves = Vec::with_capacity(total.div_ceil(CHUNK_SIZE as u64) as usize);
        let mut done = 0u64;
        loop {
            let n = read_full(&mut file, &mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            leaves.push(keccak256(&buf[..n]));
            done += n as u64;
            progress(done, total);
        }
        Self::from_leaves(leaves)
    }

    /// Builds the tree of an in-memory byte string.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        Self::from_leaves(data.chunks(CHUNK_SIZE).map(keccak256).collect())
    }

    /// Builds a tree from precomputed leaves.
    pub fn from_leaves(leaves: Vec<B256>) -> Result<Self> {
        if leaves.is_empty() {
            return Err(Error::ModelProof("a model file must not be empty".into()));
        }
        Ok(Self { leaves })
    }

    /// Number of chunks.
    pub fn leaf_count(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The leaves, in file order.
    pub fn leaves(&self) -> &[B256] {
        &self.leaves
    }

    /// The Merkle root registered for the model.
    pub fn root(&self) -> B256 {
        let mut level = self.leaves.clone();
        while level.len() > 1 {
            level = next_level(&level);
        }
        level[0]
    }

    /// The proof that chunk `index` belongs to this tree.
    pub fn proof(&self, index: u64) -> Result<ChunkProof> {
        let count = self.leaf_count();
        if index >= count {
            return Err(Error::ModelProof(format!(
                "chunk {index} out of range: the file has {count}"
            )));
        }
        let mut siblings = Vec::new();
        let mut level = self.leaves.clone();
        let mut i = index as usize;
        while level.len() > 1 {
            let sibling = i ^ 1;
            if sibling < level.len() {
                siblings.push(level[sibling]);
            }
            level = next_level(&level);
            i /= 2;
        }
        Ok(ChunkProof {
            index,
            leaf_count: count,
            leaf: self.leaves[index as usize],
            siblings,
        })
    }
}

impl ChunkProof {
    /// The root this proof leads to (compare it with the registered root).
    pub fn compute_root(&self) -> Result<B256> {
        if self.index >= self.leaf_count {
            return Err(Error::ModelProof(format!(
                "chunk {} out of range: the file has {}",
                self.index, self.leaf_count
            )));
        }
        let mut node = self.leaf;
        let (mut i, mut width) = (self.index, self.leaf_count);
        let mut siblings = self.siblings.iter();
        while width > 1 {
            if i ^ 1 < width {
                let sibling = siblings
                    .next()
                    .ok_or_else(|| Error::ModelProof("proof is too short".into()))?;
                node = if i % 2 == 0 {
                    hash_pair(node, *sibling)
                } else {
                    hash_pair(*sibling, node)
                };
            }
            i /= 2;
            width = width.div_ceil(2);
        }
        if siblings.next().is_some() {
            return Err(Error::ModelProof("proof is too long".into()));
        }
        Ok(node)
    }

    /// Checks the proof against a registered root.
    pub fn verify(&self, root: B256) -> Result<()> {
        let computed = self.compute_root()?;
        if computed != root {
            return Err(Error::ModelProof(format!(
                "chunk {} leads to root {computed}, expected {root}",
                self.index
            )));
        }
        Ok(())
    }
}

/// Reads chunk `index` of the file at `path` (at most [`CHUNK_SIZE`] bytes).
pub fn read_chunk(path: impl AsRef<Path>, index: u64) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(index * CHUNK_SIZE as u64))
        .map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; CHUNK_SIZE];
    let n = read_full(&mut file, &mut buf).map_err(|e| Error::io(path, e))?;
    if n == 0 {
        return Err(Error::ModelProof(format!(
            "chunk {index} is past the end of {}",
            path.display()
        )));
    }
    buf.truncate(n);
    Ok(buf)
}

fn hash_pair(left: B256, right: B256) -> B256 {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(left.as_slice());
    both[32..].copy_from_slice(right.as_slice());
    keccak256(both)
}

fn next_level(level: &[B256]) -> Vec<B256> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => hash_pair(*left, *right),
            [alone] => *alone,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// Fills `buf` as far as the reader allows; returns the bytes read (short only at end of file).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(chunks: usize) -> ModelTree {
        ModelTree::from_leaves((0..chunks).map(|i| keccak256(i.to_be_bytes())).collect())
            .expect("non-empty")
    }

    #[test]
    fn every_proof_verifies_for_every_shape() {
        for n in 1..=17 {
            let tree = tree_of(n);
            let root = tree.root();
            for i in 0..n as u64 {
                tree.proof(i)
                    .expect("in range")
                    .verify(root)
                    .expect("valid proof");
            }
        }
    }

    #[test]
    fn single_chunk_root_is_its_leaf() {
        let data = b"one small model";
        let tree = ModelTree::from_bytes(data).expect("non-empty");
        assert_eq!(tree.root(), keccak256(data));
        assert!(tree.proof(0).expect("in range").siblings.is_empty());
    }

    #[test]
    fn three_leaves_promote_the_odd_one() {
        let tree = tree_of(3);
        let l = tree.leaves();
        assert_eq!(tree.root(), hash_pair(hash_pair(l[0], l[1]), l[2]));
    }

    #[test]
    fn tampered_proofs_fail() {
        let tree = tree_of(5);
        let root = tree.root();
        let mut proof = tree.proof(2).expect("in range");
        proof.leaf = keccak256(b"not the chunk");
        assert!(matches!(proof.verify(root), Err(Error::ModelProof(_))));

        let mut short = tree.proof(2).expect("in range");
        short.siblings.pop();
        assert!(matches!(short.verify(root), Err(Error::ModelProof(_))));

        let mut long = tree.proof(2).expect("in range");
        long.siblings.push(B256::ZERO);
        assert!(matches!(long.verify(root), Err(Error::ModelProof(_))));

        let mut moved = tree.proof(2).expect("in range");
        moved.index = 3;
        assert!(moved.verify(root).is_err());
    }

    #[test]
    fn out_of_range_and_empty_are_errors() {
        assert!(matches!(tree_of(4).proof(4), Err(Error::ModelProof(_))));
        assert!(matches!(
            ModelTree::from_bytes(&[]),
            Err(Error::ModelProof(_))
        ));
    }

    #[test]
    fn file_tree_matches_bytes_and_reports_progress() {
        let data: Vec<u8> = (0..(2 * CHUNK_SIZE + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.bin");
        std::fs::write(&path, &data).expect("write");
        let mut calls = Vec::new();
        let tree =
            ModelTree::from_file(&path, |done, total| calls.push((done, total))).expect("readable");
        assert_eq!(tree, ModelTree::from_bytes(&data).expect("non-empty"));
        assert_eq!(tree.leaf_count(), 3);
        assert_eq!(calls.last(), Some(&(data.len() as u64, data.len() as u64)));
        assert_eq!(
            read_chunk(&path, 2).expect("chunk"),
            data[2 * CHUNK_SIZE..].to_vec()
        );
        assert!(read_chunk(&path, 3).is_err());
    }
}
