//! Model-file Merkle trees: the commitment a model is registered under, chunk proofs, and the
//! piece proofs a liveness answer carries.
//!
//! A model's tree has two levels of rule.
//!
//! **Chunks** (the rule of `contracts/libraries/ModelMerkle.sol`): the file is cut into chunks of
//! [`CHUNK_SIZE`] bytes (the last one may be shorter); a parent is `keccak256(left || right)` in
//! file order (pairs are not sorted); a node without a right neighbour moves up unchanged; the
//! root of a one-chunk file is its leaf. A proof lists the siblings from the leaf up, skipping the
//! levels where the node moved up alone, so checking it needs the leaf's index and the number of
//! leaves, which the registry stores with the root.
//!
//! **Pieces** (below a chunk leaf, off-chain only): a chunk's leaf is the root of its *piece
//! tree*. The chunk is cut into pieces of [`PIECE_SIZE`] bytes (the file's last piece may be
//! shorter, never empty); a piece's leaf is `keccak256(0x00 || piece)`, a parent
//! `keccak256(0x01 || left || right)`, pairs in order, an odd last node moved up unchanged. The
//! contract never looks below a chunk leaf, so its check is the same for either rule.
//!
//! Why pieces: a liveness answer carries the bytes of one piece the challenge picks, with its path
//! to the chunk leaf and the chunk's path to the root. When a leaf was `keccak256(chunk)`, the
//! list of leaves (32 bytes per MiB) answered every challenge; a piece's bytes can only come from
//! the weights.
//!
//! Why the prefixes (second preimages): without them a piece's leaf and an inner node would both
//! be `keccak256` of some bytes, and the 64 bytes `left || right` of any inner node would hash to
//! that node as if they were a piece. Someone holding only hashes could then answer with an inner
//! node's two children as "the piece" and a shorter path. With `0x00` before a piece and `0x01`
//! before a pair, a piece hash and an inner hash never come from the same input.
//!
//! The rule is versioned ([`TREE_VERSION`]) so that a root recorded under an older rule is
//! recomputed, never trusted.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use alloy::primitives::{B256, Keccak256, keccak256};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

mod piece_index;
pub use piece_index::{PIECES_PER_GROUP, PieceIndex};

/// Size of one model chunk (a leaf of the registered tree): 1 MiB.
pub const CHUNK_SIZE: usize = 1 << 20;

/// Size of one piece of a chunk (a leaf of the chunk's piece tree): 4 KiB.
pub const PIECE_SIZE: usize = 4096;

/// Pieces in every chunk but the file's last: 256.
pub const PIECES_PER_CHUNK: u64 = (CHUNK_SIZE / PIECE_SIZE) as u64;

/// Version of the tree rule, recorded beside a root: 1 had `keccak256(chunk)` as a chunk's leaf,
/// 2 (this one) has the root of the chunk's piece tree.
pub const TREE_VERSION: u32 = 2;

/// Prefix of a piece's bytes in its leaf hash.
const PIECE_LEAF: u8 = 0x00;
/// Prefix of two child hashes in a piece tree's inner node.
const PIECE_NODE: u8 = 0x01;

/// How two child hashes make their parent at one level of rule.
type Pair = fn(B256, B256) -> B256;

/// The leaves of a model file's Merkle tree (one 32-byte hash per 1 MiB chunk).
///
/// Holding only the leaves keeps memory at 32 bytes per MiB of model; inner nodes are recomputed
/// when a proof is asked for, which costs one pass over the leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTree {
    leaves: Vec<B256>,
}

/// A chunk's proof of membership in a model's tree (what `ProviderRegistry.verifyModelChunk`
/// checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkProof {
    /// Index of the chunk in the file.
    pub index: u64,
    /// Number of chunks (leaves) in the file.
    pub leaf_count: u64,
    /// The chunk's leaf: the root of its piece tree.
    pub leaf: B256,
    /// Sibling hashes from the leaf level up.
    pub siblings: Vec<B256>,
}

/// The piece tree of one chunk, over the chunk's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceTree<'a> {
    chunk: &'a [u8],
    leaves: Vec<B256>,
}

/// One piece of a chunk with its proof of membership in the chunk's piece tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PieceProof {
    /// Index of the piece in its chunk.
    pub index: u64,
    /// Number of pieces in the chunk: [`PIECES_PER_CHUNK`] for every chunk but the file's last.
    pub piece_count: u64,
    /// The piece's bytes (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
    /// Sibling hashes from the piece up to the chunk leaf.
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
            leaves.push(PieceTree::new(&buf[..n])?.root());
            done += n as u64;
            progress(done, total);
        }
        Self::from_leaves(leaves)
    }

    /// Builds the tree of an in-memory byte string.
    pub fn from_bytes(data: &[u8]) -> Result<Self> {
        let leaves = data
            .chunks(CHUNK_SIZE)
            .map(|chunk| PieceTree::new(chunk).map(|pieces| pieces.root()))
            .collect::<Result<_>>()?;
        Self::from_leaves(leaves)
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
        root_of(&self.leaves, hash_pair)
    }

    /// The proof that chunk `index` belongs to this tree.
    pub fn proof(&self, index: u64) -> Result<ChunkProof> {
        let count = self.leaf_count();
        if index >= count {
            return Err(Error::ModelProof(format!(
                "chunk {index} out of range: the file has {count}"
            )));
        }
        Ok(ChunkProof {
            index,
            leaf_count: count,
            leaf: self.leaves[index as usize],
            siblings: siblings_of(&self.leaves, index as usize, hash_pair),
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
        fold_path(
            "proof",
            self.leaf,
            self.index,
            self.leaf_count,
            &self.siblings,
            hash_pair,
        )
    }

    /// Checks the proof against a registered root. The proof's own `leaf_count` shapes the tree:
    /// a caller holding the registered chunk count must compare it first.
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

impl<'a> PieceTree<'a> {
    /// The piece tree of `chunk` (1 to [`CHUNK_SIZE`] bytes).
    pub fn new(chunk: &'a [u8]) -> Result<Self> {
        if chunk.is_empty() || chunk.len() > CHUNK_SIZE {
            return Err(Error::ModelProof(format!(
                "a chunk has 1 to {CHUNK_SIZE} bytes, not {}",
                chunk.len()
            )));
        }
        let leaves = chunk.chunks(PIECE_SIZE).map(hash_piece).collect();
        Ok(Self { chunk, leaves })
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The chunk's leaf in the model tree.
    pub fn root(&self) -> B256 {
        root_of(&self.leaves, hash_piece_node)
    }

    /// Piece `index` with its path to the chunk leaf.
    pub fn proof(&self, index: u64) -> Result<PieceProof> {
        let count = self.piece_count();
        if index >= count {
            return Err(Error::ModelProof(format!(
                "piece {index} out of range: the chunk has {count}"
            )));
        }
        let at = index as usize;
        let start = at * PIECE_SIZE;
        Ok(PieceProof {
            index,
            piece_count: count,
            bytes: self.chunk[start..self.chunk.len().min(start + PIECE_SIZE)].to_vec(),
            siblings: siblings_of(&self.leaves, at, hash_piece_node),
        })
    }
}

impl PieceProof {
    /// Checks that this piece can be piece `index` of chunk `chunk_index` in a file of
    /// `chunk_count` chunks: every chunk but the last has [`PIECES_PER_CHUNK`] pieces, the last
    /// 1 to [`PIECES_PER_CHUNK`]; every piece is [`PIECE_SIZE`] bytes but the last piece of the
    /// last chunk, which has 1 to [`PIECE_SIZE`].
    pub fn check_shape(&self, chunk_index: u64, chunk_count: u64) -> Result<()> {
        if chunk_index >= chunk_count {
            return Err(Error::ModelProof(format!(
                "chunk {chunk_index} out of range: the file has {chunk_count}"
            )));
        }
        let last_chunk = chunk_index + 1 == chunk_count;
        let counts = if last_chunk { 1 } else { PIECES_PER_CHUNK }..=PIECES_PER_CHUNK;
        if !counts.contains(&self.piece_count) {
            return Err(Error::Mismatch {
                field: "pieceCount",
                expected: range_text(&counts),
                actual: self.piece_count.to_string(),
            });
        }
        if self.index >= self.piece_count {
            return Err(Error::Mismatch {
                field: "pieceIndex",
                expected: format!("below {}", self.piece_count),
                actual: self.index.to_string(),
            });
        }
        let last_piece = last_chunk && self.index + 1 == self.piece_count;
        let lengths = if last_piece { 1 } else { PIECE_SIZE }..=PIECE_SIZE;
        if !lengths.contains(&self.bytes.len()) {
            return Err(Error::Mismatch {
                field: "pieceLength",
                expected: range_text(&lengths),
                actual: self.bytes.len().to_string(),
            });
        }
        Ok(())
    }

    /// The chunk leaf this piece and its path lead to (compare it with the chunk proof's leaf).
    pub fn compute_chunk_leaf(&self) -> Result<B256> {
        if self.index >= self.piece_count {
            return Err(Error::ModelProof(format!(
                "piece {} out of range: the chunk has {}",
                self.index, self.piece_count
            )));
        }
        fold_path(
            "piece proof",
            hash_piece(&self.bytes),
            self.index,
            self.piece_count,
            &self.siblings,
            hash_piece_node,
        )
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

/// A chunk-level parent, as `ModelMerkle.hashPair`.
fn hash_pair(left: B256, right: B256) -> B256 {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(left.as_slice());
    both[32..].copy_from_slice(right.as_slice());
    keccak256(both)
}

fn hash_piece(piece: &[u8]) -> B256 {
    let mut hasher = Keccak256::new();
    hasher.update([PIECE_LEAF]);
    hasher.update(piece);
    hasher.finalize()
}

fn hash_piece_node(left: B256, right: B256) -> B256 {
    let mut both = [0u8; 65];
    both[0] = PIECE_NODE;
    both[1..33].copy_from_slice(left.as_slice());
    both[33..].copy_from_slice(right.as_slice());
    keccak256(both)
}

fn next_level(level: &[B256], pair: Pair) -> Vec<B256> {
    level
        .chunks(2)
        .map(|nodes| match nodes {
            [left, right] => pair(*left, *right),
            [alone] => *alone,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// The root over non-empty `leaves`.
fn root_of(leaves: &[B256], pair: Pair) -> B256 {
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level, pair);
    }
    level[0]
}

/// The siblings of leaf `index` from the bottom up, skipping levels where it moved up alone.
fn siblings_of(leaves: &[B256], mut index: usize, pair: Pair) -> Vec<B256> {
    let mut siblings = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        if let Some(sibling) = level.get(index ^ 1) {
            siblings.push(*sibling);
        }
        level = next_level(&level, pair);
        index /= 2;
    }
    siblings
}

/// The root that `leaf` at `index` of `width` leaves and its `siblings` lead to.
fn fold_path(
    what: &str,
    leaf: B256,
    mut index: u64,
    mut width: u64,
    siblings: &[B256],
    pair: Pair,
) -> Result<B256> {
    let mut node = leaf;
    let mut siblings = siblings.iter();
    while width > 1 {
        if index ^ 1 < width {
            let sibling = siblings
                .next()
                .ok_or_else(|| Error::ModelProof(format!("{what} is too short")))?;
            node = if index.is_multiple_of(2) {
                pair(node, *sibling)
            } else {
                pair(*sibling, node)
            };
        }
        index /= 2;
        width = width.div_ceil(2);
    }
    if siblings.next().is_some() {
        return Err(Error::ModelProof(format!("{what} is too long")));
    }
    Ok(node)
}

fn range_text<T: PartialEq + std::fmt::Display>(range: &std::ops::RangeInclusive<T>) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{} to {}", range.start(), range.end())
    }
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

/// A piece's bytes in JSON: standard base64, a third longer than the bytes (hex would double them).
mod base64_bytes {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::b256;

    use super::*;

    fn tree_of(chunks: usize) -> ModelTree {
        ModelTree::from_leaves((0..chunks).map(|i| keccak256(i.to_be_bytes())).collect())
            .expect("non-empty")
    }

    /// Bytes `i % 251`, the pattern the fixed vectors below were computed over.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn prefixed(prefix: u8, parts: &[&[u8]]) -> B256 {
        keccak256([&[prefix][..], &parts.concat()].concat())
    }

    // The fixed vectors were computed with an independent keccak (js-sha3) over the same rule.

    #[test]
    fn piece_tree_by_hand() {
        // One piece: the chunk leaf is the piece's leaf, 0x00 || bytes.
        let one = PieceTree::new(b"abc").expect("non-empty");
        assert_eq!(one.piece_count(), 1);
        assert_eq!(one.root(), keccak256([0x00, b'a', b'b', b'c']));
        assert_eq!(
            one.root(),
            b256!("c168262281c10d4285a4aecba18107ae7f43f8c07d15d2875d5f2acf1ed3d076")
        );

        // Two pieces, the second short: 0x01 || leaf0 || leaf1.
        let data = pattern(5000);
        let (l0, l1) = (
            prefixed(0x00, &[&data[..4096]]),
            prefixed(0x00, &[&data[4096..]]),
        );
        let two = PieceTree::new(&data).expect("non-empty");
        assert_eq!(two.piece_count(), 2);
        assert_eq!(two.root(), prefixed(0x01, &[&l0[..], &l1[..]]));
        assert_eq!(
            two.root(),
            b256!("5f901a87684d9ba437af73560b9752b71edebf7ce0be37c58ef02925391cf996")
        );

        // Three pieces, the last of one byte: the odd one moves up unchanged.
        let data = pattern(2 * PIECE_SIZE + 1);
        let leaf = |i: usize| {
            prefixed(
                0x00,
                &[&data[i * PIECE_SIZE..data.len().min((i + 1) * PIECE_SIZE)]],
            )
        };
        let left = prefixed(0x01, &[&leaf(0)[..], &leaf(1)[..]]);
        let three = PieceTree::new(&data).expect("non-empty");
        assert_eq!(three.root(), prefixed(0x01, &[&left[..], &leaf(2)[..]]));
        assert_eq!(
            three.root(),
            b256!("e37bb5d72c61958b2f3e99451d13c8dd11df318bfbc49874b6e63cc419fa76ba")
        );

        // A whole chunk: 256 pieces.
        let full = pattern(CHUNK_SIZE);
        let full = PieceTree::new(&full).expect("non-empty");
        assert_eq!(full.piece_count(), PIECES_PER_CHUNK);
        assert_eq!(
            full.root(),
            b256!("678679132a0a10b447ee9b6f45b3ea050fa2caafdfe386ec44217a2d482a36ba")
        );
    }

    #[test]
    fn chunk_level_is_the_contract_rule() {
        // The five-leaf example of docs/protocol.md: H(H(H(l0,l1), H(l2,l3)), l4), unprefixed.
        let tree = tree_of(5);
        let l = tree.leaves();
        let left = hash_pair(hash_pair(l[0], l[1]), hash_pair(l[2], l[3]));
        assert_eq!(tree.root(), hash_pair(left, l[4]));
        assert_eq!(tree.proof(4).expect("in range").siblings, vec![left]);
        assert_eq!(
            hash_pair(l[0], l[1]),
            keccak256([l[0].as_slice(), l[1].as_slice()].concat())
        );

        // A file of 1 MiB + 5000 bytes: two chunk leaves, each a piece-tree root, paired plainly.
        let data = pattern(CHUNK_SIZE + 5000);
        let tree = ModelTree::from_bytes(&data).expect("non-empty");
        let leaf0 = PieceTree::new(&data[..CHUNK_SIZE]).expect("chunk").root();
        let leaf1 = PieceTree::new(&data[CHUNK_SIZE..]).expect("chunk").root();
        assert_eq!(tree.leaves(), [leaf0, leaf1]);
        assert_eq!(tree.root(), hash_pair(leaf0, leaf1));
        assert_eq!(
            tree.root(),
            b256!("299ac160264785d44476ea2e8ffda2c51a9e652f0014c725588d85a301f56203")
        );
        assert_ne!(
            tree.leaves()[1],
            keccak256(&data[CHUNK_SIZE..]),
            "a chunk leaf is no longer the chunk's hash"
        );
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
    fn every_piece_proof_round_trips() {
        for len in [
            1,
            64,
            PIECE_SIZE - 1,
            PIECE_SIZE,
            PIECE_SIZE + 1,
            3 * PIECE_SIZE + 7,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
        ] {
            let data = pattern(len);
            let tree = PieceTree::new(&data).expect("non-empty");
            let root = tree.root();
            for i in 0..tree.piece_count() {
                let proof = tree.proof(i).expect("in range");
                let start = i as usize * PIECE_SIZE;
                assert_eq!(proof.bytes, data[start..len.min(start + PIECE_SIZE)]);
                assert_eq!(
                    proof.compute_chunk_leaf().expect("valid"),
                    root,
                    "{len}: {i}"
                );
                // As the file's last chunk, every length is a valid shape.
                proof.check_shape(3, 4).expect("the last chunk's shape");
            }
            assert!(tree.proof(tree.piece_count()).is_err());
        }
    }

    #[test]
    fn single_chunk_root_is_its_leaf() {
        let data = b"one small model";
        let tree = ModelTree::from_bytes(data).expect("non-empty");
        assert_eq!(tree.root(), prefixed(0x00, &[data]));
        assert!(tree.proof(0).expect("in range").siblings.is_empty());
    }

    #[test]
    fn three_leaves_promote_the_odd_one() {
        let tree = tree_of(3);
        let l = tree.leaves();
        assert_eq!(tree.root(), hash_pair(hash_pair(l[0], l[1]), l[2]));
    }

    #[test]
    fn inner_children_do_not_pass_as_a_piece() {
        // The second preimage the prefixes rule out: the 64 bytes of a node's children.
        let data = pattern(PIECE_SIZE + 10);
        let tree = PieceTree::new(&data).expect("non-empty");
        let (l0, l1) = (tree.leaves[0], tree.leaves[1]);
        let children = [l0.as_slice(), l1.as_slice()].concat();
        // Unprefixed (as the chunk level pairs), the children as bytes hash to their parent.
        assert_eq!(keccak256(&children), hash_pair(l0, l1));
        // Prefixed, they are a piece of 64 bytes whose leaf is not the node.
        let forged = PieceProof {
            index: 0,
            piece_count: 1,
            bytes: children,
            siblings: vec![],
        };
        forged
            .check_shape(0, 1)
            .expect("a 64-byte last piece is a valid shape");
        assert_eq!(tree.root(), hash_piece_node(l0, l1));
        assert_ne!(forged.compute_chunk_leaf().expect("no path"), tree.root());
    }

    #[test]
    fn forged_piece_shapes_are_refused() {
        let data = pattern(CHUNK_SIZE);
        let tree = PieceTree::new(&data).expect("non-empty");
        let good = tree.proof(7).expect("in range");
        good.check_shape(0, 3).expect("a full chunk's piece");
        let mismatch =
            |proof: &PieceProof, chunk: u64, chunks: u64| match proof.check_shape(chunk, chunks) {
                Err(Error::Mismatch { field, .. }) => field,
                other => panic!("expected a mismatch, got {other:?}"),
            };

        // Not the last chunk: exactly 256 pieces of 4096 bytes.
        let few = PieceProof {
            piece_count: 255,
            ..good.clone()
        };
        assert_eq!(mismatch(&few, 0, 3), "pieceCount");
        let one = PieceProof {
            index: 0,
            piece_count: 1,
            ..good.clone()
        };
        assert_eq!(mismatch(&one, 1, 3), "pieceCount");
        let short = PieceProof {
            bytes: good.bytes[..100].to_vec(),
            ..good.clone()
        };
        assert_eq!(mismatch(&short, 0, 3), "pieceLength");
        let last_short = PieceProof {
            index: 255,
            bytes: vec![1; 100],
            ..good.clone()
        };
        assert_eq!(
            mismatch(&last_short, 1, 3),
            "pieceLength",
            "only the file's last piece is short"
        );

        // The last chunk: 1 to 256 pieces, only the last one short, never empty or over 4 KiB.
        for count in [0, PIECES_PER_CHUNK + 1] {
            let bad = PieceProof {
                index: 0,
                piece_count: count,
                ..good.clone()
            };
            assert_eq!(mismatch(&bad, 2, 3), "pieceCount");
        }
        let beyond = PieceProof {
            index: 45,
            piece_count: 45,
            ..good.clone()
        };
        assert_eq!(mismatch(&beyond, 2, 3), "pieceIndex");
        let not_last = PieceProof {
            index: 3,
            piece_count: 45,
            bytes: vec![1; 761],
            ..good.clone()
        };
        assert_eq!(mismatch(&not_last, 2, 3), "pieceLength");
        for len in [0, PIECE_SIZE + 1] {
            let bad = PieceProof {
                index: 44,
                piece_count: 45,
                bytes: vec![1; len],
                ..good.clone()
            };
            assert_eq!(mismatch(&bad, 2, 3), "pieceLength");
        }
        let fits = PieceProof {
            index: 44,
            piece_count: 45,
            bytes: vec![1; 761],
            ..good.clone()
        };
        fits.check_shape(2, 3).expect("the file's last piece");
        assert!(matches!(fits.check_shape(3, 3), Err(Error::ModelProof(_))));
    }

    #[test]
    fn tampered_piece_proofs_fail() {
        let data = pattern(CHUNK_SIZE);
        let tree = PieceTree::new(&data).expect("non-empty");
        let root = tree.root();
        let good = tree.proof(9).expect("in range");

        let mut bytes = good.clone();
        bytes.bytes[0] ^= 1;
        assert_ne!(bytes.compute_chunk_leaf().expect("a path"), root);

        let mut moved = good.clone();
        moved.index = 8;
        assert_ne!(moved.compute_chunk_leaf().expect("a path"), root);

        let mut short = good.clone();
        short.siblings.pop();
        assert!(matches!(
            short.compute_chunk_leaf(),
            Err(Error::ModelProof(_))
        ));

        let mut long = good.clone();
        long.siblings.push(B256::ZERO);
        assert!(matches!(
            long.compute_chunk_leaf(),
            Err(Error::ModelProof(_))
        ));

        let mut beyond = good;
        beyond.index = PIECES_PER_CHUNK;
        assert!(matches!(
            beyond.compute_chunk_leaf(),
            Err(Error::ModelProof(_))
        ));
    }

    #[test]
    fn piece_bytes_travel_as_base64() {
        let proof = PieceTree::new(b"abc")
            .expect("non-empty")
            .proof(0)
            .expect("in range");
        let json = serde_json::to_value(&proof).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({"index": 0, "pieceCount": 1, "bytes": "YWJj", "siblings": []})
        );
        assert_eq!(
            serde_json::from_value::<PieceProof>(json).expect("parses"),
            proof
        );
        let bad = serde_json::json!({"index": 0, "pieceCount": 1, "bytes": "%%", "siblings": []});
        assert!(serde_json::from_value::<PieceProof>(bad).is_err());
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
        assert!(matches!(PieceTree::new(&[]), Err(Error::ModelProof(_))));
        assert!(matches!(
            PieceTree::new(&vec![0; CHUNK_SIZE + 1]),
            Err(Error::ModelProof(_))
        ));
    }

    #[test]
    fn file_tree_matches_bytes_and_reports_progress() {
        let data = pattern(2 * CHUNK_SIZE + 12345);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.bin");
        std::fs::write(&path, &data).expect("write");
        let mut calls = Vec::new();
        let tree =
            ModelTree::from_file(&path, |done, total| calls.push((done, total))).expect("readable");
        assert_eq!(tree, ModelTree::from_bytes(&data).expect("non-empty"));
        assert_eq!(tree.leaf_count(), 3);
        assert_eq!(
            tree.root(),
            b256!("8c9e1bc01dfa3b04e3fb21aa34f171afa3d6d3f35edf7f202e0145459a824930")
        );
        assert_eq!(calls.last(), Some(&(data.len() as u64, data.len() as u64)));
        assert_eq!(
            read_chunk(&path, 2).expect("chunk"),
            data[2 * CHUNK_SIZE..].to_vec()
        );
        assert!(read_chunk(&path, 3).is_err());
    }
}
