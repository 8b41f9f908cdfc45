// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IProviderRegistry
/// @notice Providers (endpoint and locked stake), the temporary whitelist, models (a Merkle root of the
/// weights), providers' signed claims to hold models, and bids. Routers index its events and views.
/// @dev `modelId = keccak256(abi.encode(creator, merkleRoot, keccak256(bytes(name))))`: the creator is part
/// of the id, so nobody can squat or front-run another creator's id. `ModelClaim` is EIP-712 typed data
/// under {name: "Morpheus Compute", version: "1", chainId, verifyingContract: this}.
interface IProviderRegistry {
    /*//////////////////////////////////////////////////////////////
                                 TYPES
    //////////////////////////////////////////////////////////////*/

    /// @notice Where a provider is in its life.
    enum ProviderStatus {
        None,
        Active,
        Deregistered
    }

    /// @notice A provider, as the views return it.
    /// @param provider The provider's address.
    /// @param endpoint Its OpenAI-compatible base URL.
    /// @param stake Its locked MOR (never slashed).
    /// @param registeredAt When it registered (unix seconds).
    /// @param unlockAt When a deregistered provider's stake becomes withdrawable (zero while active).
    /// @param status Its status.
    /// @param bidCount How many active bids it has.
    struct Provider {
        address provider;
        string endpoint;
        uint256 stake;
        uint256 registeredAt;
        uint256 unlockAt;
        ProviderStatus status;
        uint256 bidCount;
    }

    /// @notice A model, as the views return it.
    /// @param modelId The model's id.
    /// @param creator Who registered it.
    /// @param merkleRoot The Merkle root of its weights file in 1 MiB chunks.
    /// @param chunkCount How many chunks (leaves) the file has.
    /// @param registeredAt When it was registered (unix seconds).
    /// @param format The weights file's format: a lowercase label, left-aligned and zero-padded (`"gguf"`).
    /// @param name Its name, the one users know it by.
    struct Model {
        bytes32 modelId;
        address creator;
        bytes32 merkleRoot;
        uint256 chunkCount;
        uint256 registeredAt;
        bytes16 format;
        string name;
    }

    /// @notice A bid, as the views return it.
    /// @param provider The bidding provider.
    /// @param modelId The model served.
    /// @param pricePerToken MOR wei per token.
    /// @param capacity How many sessions the provider serves at once for this model.
    struct Bid {
        address provider;
        bytes32 modelId;
        uint256 pricePerToken;
        uint256 capacity;
    }

    /*//////////////////////////////////////////////////////////////
                                 ERRORS
    //////////////////////////////////////////////////////////////*/

    /// @notice Thrown when registering while the whitelist is on and the caller is not on it.
    /// @param provider The caller.
    error ProviderRegistryNotWhitelisted(address provider);

    /// @notice Thrown when registering an address that is registered or still has its stake locked.
    /// @param provider The caller.
    error ProviderRegistryAlreadyRegistered(address provider);

    /// @notice Thrown when an action needs an active provider.
    /// @param provider The address.
    error ProviderRegistryNotRegistered(address provider);

    /// @notice Thrown when registering with less than the minimum stake.
    /// @param stake The stake offered.
    /// @param minStake The minimum.
    error ProviderRegistryStakeTooLow(uint256 stake, uint256 minStake);

    /// @notice Thrown when a stake or minimum stake does not fit 96 bits.
    /// @param stake The value given.
    error ProviderRegistryStakeTooLarge(uint256 stake);

    /// @notice Thrown when the minimum stake would be zero (at deployment or by `setMinStake`): every
    /// provider identity must lock some MOR, or identities are free.
    error ProviderRegistryZeroMinStake();

    /// @notice Thrown when an endpoint is empty or longer than 256 bytes.
    /// @param length Its length in bytes.
    error ProviderRegistryInvalidEndpoint(uint256 length);

    /// @notice Thrown when deregistering with bids still active.
    /// @param provider The provider.
    /// @param bidCount How many bids it has.
    error ProviderRegistryActiveBids(address provider, uint256 bidCount);

    /// @notice Thrown when withdrawing the stake of a provider that has not deregistered.
    /// @param provider The provider.
    error ProviderRegistryNotDeregistered(address provider);

    /// @notice Thrown when withdrawing a stake before its cooldown ends.
    /// @param unlockAt When it unlocks.
    error ProviderRegistryStakeLocked(uint256 unlockAt);

    /// @notice Thrown when changing the whitelist after it was switched off for good.
    error ProviderRegistryWhitelistDisabled();

    /// @notice Thrown when registering a model with a zero root, no chunks, or an empty or over-long name.
    /// @param merkleRoot The root given.
    /// @param chunkCount The chunk count given.
    /// @param nameLength The name's length in bytes (1..128).
    error ProviderRegistryInvalidModel(bytes32 merkleRoot, uint256 chunkCount, uint256 nameLength);

    /// @notice Thrown when registering a model whose format is not a label: empty, or not 1..16 bytes of
    /// `a-z`, `0-9` from the left, zero-padded.
    /// @param format The format given.
    error ProviderRegistryInvalidFormat(bytes16 format);

    /// @notice Thrown when registering a model whose id exists.
    /// @param modelId The id.
    error ProviderRegistryModelExists(bytes32 modelId);

    /// @notice Thrown when a model id is not registered.
    /// @param modelId The id.
    error ProviderRegistryUnknownModel(bytes32 modelId);

    /// @notice Thrown when a model claim's signature is not the provider's.
    /// @param provider The provider.
    /// @param modelId The model.
    error ProviderRegistryInvalidSignature(address provider, bytes32 modelId);

    /// @notice Thrown when bidding on a model the provider has not claimed to hold.
    /// @param provider The provider.
    /// @param modelId The model.
    error ProviderRegistryModelNotClaimed(address provider, bytes32 modelId);

    /// @notice Thrown when posting a bid that exists (update it instead).
    /// @param provider The provider.
    /// @param modelId The model.
    error ProviderRegistryBidExists(address provider, bytes32 modelId);

    /// @notice Thrown when updating or deleting a bid that does not exist.
    /// @param provider The provider.
    /// @param modelId The model.
    error ProviderRegistryNoBid(address provider, bytes32 modelId);

    /// @notice Thrown when a bid's price or capacity is zero or too large (112 and 64 bits).
    /// @param pricePerToken The price given.
    /// @param capacity The capacity given.
    error ProviderRegistryInvalidBid(uint256 pricePerToken, uint256 capacity);

    /// @notice Thrown when an address argument is zero.
    error ProviderRegistryZeroAddress();

    /*//////////////////////////////////////////////////////////////
                                 EVENTS
    //////////////////////////////////////////////////////////////*/

    /// @notice Emitted when a provider registers.
    /// @param provider The provider.
    /// @param endpoint Its endpoint.
    /// @param stake The MOR it locked.
    event ProviderRegistered(address indexed provider, string endpoint, uint256 stake);

    /// @notice Emitted when a provider changes its endpoint.
    /// @param provider The provider.
    /// @param endpoint The new endpoint.
    event EndpointUpdated(address indexed provider, string endpoint);

    /// @notice Emitted when a provider deregisters.
    /// @param provider The provider.
    /// @param unlockAt When its stake becomes withdrawable.
    event ProviderDeregistered(address indexed provider, uint256 unlockAt);

    /// @notice Emitted when a deregistered provider withdraws its stake.
    /// @param provider The provider.
    /// @param amount The MOR returned.
    event StakeWithdrawn(address indexed provider, uint256 amount);

    /// @notice Emitted when the owner adds an address to the whitelist.
    /// @param provider The address.
    event WhitelistAdded(address indexed provider);

    /// @notice Emitted when the owner removes an address from the whitelist.
    /// @param provider The address.
    event WhitelistRemoved(address indexed provider);

    /// @notice Emitted when the whitelist is switched off for good.
    event WhitelistDisabled();

    /// @notice Emitted when the minimum provider stake changes.
    /// @param minStake The new minimum, in MOR wei.
    event MinStakeSet(uint256 minStake);

    /// @notice Emitted when a model is registered.
    /// @param modelId The model's id.
    /// @param creator Who registered it.
    /// @param merkleRoot The Merkle root of its weights.
    /// @param chunkCount How many 1 MiB chunks the weights file has.
    /// @param format The weights file's format (`"gguf"`).
    /// @param name Its name.
    event ModelRegistered(
        bytes32 indexed modelId,
        address indexed creator,
        bytes32 merkleRoot,
        uint256 chunkCount,
        bytes16 format,
        string name
    );

    /// @notice Emitted when a provider's signed claim to hold a model is recorded.
    /// @param provider The provider.
    /// @param modelId The model.
    /// @param merkleRoot The root the provider signed.
    event ModelClaimed(address indexed provider, bytes32 indexed modelId, bytes32 merkleRoot);

    /// @notice Emitted when a bid is posted.
    /// @param provider The provider.
    /// @param modelId The model.
    /// @param pricePerToken MOR wei per token.
    /// @param capacity Concurrent sessions.
    event BidPosted(
        address indexed provider, bytes32 indexed modelId, uint256 pricePerToken, uint256 capacity
    );

    /// @notice Emitted when a bid's price or capacity changes.
    /// @param provider The provider.
    /// @param modelId The model.
    /// @param pricePerToken MOR wei per token.
    /// @param capacity Concurrent sessions.
    event BidUpdated(
        address indexed provider, bytes32 indexed modelId, uint256 pricePerToken, uint256 capacity
    );

    /// @notice Emitted when a bid is deleted.
    /// @param provider The provider.
    /// @param modelId The model.
    event BidDeleted(address indexed provider, bytes32 indexed modelId);

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @notice The MOR token providers stake.
    function mor() external view returns (IERC20);

    /// @notice How long a deregistered provider's stake stays locked, in seconds.
    function COOLDOWN() external view returns (uint256);

    /// @notice The minimum stake to register, in MOR wei.
    function minStake() external view returns (uint256);

    /// @notice Whether the whitelist is on (only listed addresses may register).
    function whitelistActive() external view returns (bool);

    /// @notice Whether `provider` passes the whitelist: true for everyone once it is off.
    /// @param provider The address.
    function isWhitelisted(address provider) external view returns (bool);

    /// @notice A provider (status None if it never registered or withdrew its stake).
    /// @param provider The address.
    function getProvider(address provider) external view returns (Provider memory);

    /// @notice How many addresses have ever registered.
    function providerCount() external view returns (uint256);

    /// @notice A page of providers, in order of first registration (any status).
    /// @param offset The first index.
    /// @param limit The most to return.
    function getProviders(uint256 offset, uint256 limit) external view returns (Provider[] memory);

    /// @notice The id a model would get.
    /// @param creator Who registers it.
    /// @param merkleRoot The Merkle root of its weights.
    /// @param name Its name.
    function computeModelId(address creator, bytes32 merkleRoot, string calldata name)
        external
        pure
        returns (bytes32);

    /// @notice A model; reverts if unknown.
    /// @param modelId The id.
    function getModel(bytes32 modelId) external view returns (Model memory);

    /// @notice How many models are registered.
    function modelCount() external view returns (uint256);

    /// @notice A page of models, in order of registration.
    /// @param offset The first index.
    /// @param limit The most to return.
    function getModels(uint256 offset, uint256 limit) external view returns (Model[] memory);

    /// @notice Whether `leaf` is chunk `index` of the model's weights, by a Merkle proof (see ModelMerkle).
    /// @param modelId The model.
    /// @param index The chunk's index, from 0.
    /// @param leaf The chunk's leaf: the root of its piece tree (see ModelMerkle).
    /// @param proof The siblings from the leaf up, skipping levels where the node was promoted.
    function verifyModelChunk(bytes32 modelId, uint256 index, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice Whether `provider` has a recorded claim to hold the model.
    /// @param provider The provider.
    /// @param modelId The model.
    function hasModelClaim(address provider, bytes32 modelId) external view returns (bool);

    /// @notice A provider's bid on a model (all zero if none).
    /// @param provider The provider.
    /// @param modelId The model.
    function getBid(address provider, bytes32 modelId) external view returns (Bid memory);

    /// @notice How many active bids a model has.
    /// @param modelId The model.
    function modelBidCount(bytes32 modelId) external view returns (uint256);

    /// @notice A page of a model's active bids (order changes when bids are deleted).
    /// @param modelId The model.
    /// @param offset The first index.
    /// @param limit The most to return.
    function getBidsForModel(bytes32 modelId, uint256 offset, uint256 limit)
        external
        view
        returns (Bid[] memory);

    /// @notice A page of a provider's active bids (order changes when bids are deleted).
    /// @param provider The provider.
    /// @param offset The first index.
    /// @param limit The most to return.
    function getBidsOfProvider(address provider, uint256 offset, uint256 limit)
        external
        view
        returns (Bid[] memory);

    /// @notice This contract's EIP-712 domain separator (for `ModelClaim`).
    function domainSeparator() external view returns (bytes32);

    /// @notice The EIP-712 digest of `structHash` under this contract's domain.
    /// @param structHash An EIP-712 struct hash.
    function hashTypedData(bytes32 structHash) external view returns (bytes32);

    /// @notice The EIP-712 digest a provider signs to claim a model (`ModelClaim` with the model's root).
    /// @param provider The provider.
    /// @param modelId The model; reverts if unknown.
    function hashModelClaim(address provider, bytes32 modelId) external view returns (bytes32);

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @notice Registers the caller as a provider, locking `stake` MOR (needs an allowance).
    /// @param endpoint Its OpenAI-compatible base URL, 1..256 bytes.
    /// @param stake At least `minStake`.
    function register(string calldata endpoint, uint256 stake) external;

    /// @notice Changes the caller's endpoint.
    /// @param endpoint The new endpoint, 1..256 bytes.
    function updateEndpoint(string calldata endpoint) external;

    /// @notice Deregisters the caller (it must have no bids); its stake unlocks after `COOLDOWN`.
    function deregister() external;

    /// @notice Returns a deregistered caller's stake once the cooldown is over; the address may register again.
    /// @return amount The MOR returned.
    function withdrawStake() external returns (uint256 amount);

    /// @notice Adds an address to the whitelist. Owner only, while the whitelist is on.
    /// @param provider The address.
    function addToWhitelist(address provider) external;

    /// @notice Removes an address from the whitelist (it stays registered if it is). Owner only.
    /// @param provider The address.
    function removeFromWhitelist(address provider) external;

    /// @notice Switches the whitelist off for good. Owner only.
    function disableWhitelist() external;

    /// @notice Sets the minimum stake for later registrations. Owner only.
    /// @param minStake_ The minimum, in MOR wei: not zero (`ProviderRegistryZeroMinStake`), at most 96 bits.
    function setMinStake(uint256 minStake_) external;

    /// @notice Registers a model. Anyone may; the id includes the caller.
    /// @dev The weights file is the one the model is published as (a GGUF as downloaded), not a build of it
    /// for some hardware, so every provider of that file serves the same id. The format is not part of the id:
    /// the root already fixes the bytes.
    /// @param merkleRoot The Merkle root of the weights file in 1 MiB chunks, not zero.
    /// @param chunkCount How many chunks the file has, not zero.
    /// @param format The file's format: 1..16 bytes of `a-z`, `0-9` from the left, zero-padded (`"gguf"`);
    /// else `ProviderRegistryInvalidFormat`.
    /// @param name Its name, 1..128 bytes.
    /// @return modelId The model's id.
    function registerModel(bytes32 merkleRoot, uint256 chunkCount, bytes16 format, string calldata name)
        external
        returns (bytes32 modelId);

    /// @notice Records an active provider's signed claim to hold a model. Anyone may submit it. The
    /// signature is EIP-712 `ModelClaim(provider, modelId, merkleRoot)`: ECDSA for an EOA (low-s only) or
    /// ERC-1271 for a contract wallet.
    /// @param provider The provider.
    /// @param modelId The model.
    /// @param signature The provider's signature.
    function claimModel(address provider, bytes32 modelId, bytes calldata signature) external;

    /// @notice Posts the caller's bid on a model it has claimed.
    /// @param modelId The model.
    /// @param pricePerToken MOR wei per token, not zero.
    /// @param capacity Concurrent sessions, not zero.
    function postBid(bytes32 modelId, uint256 pricePerToken, uint256 capacity) external;

    /// @notice Changes the caller's bid.
    /// @param modelId The model.
    /// @param pricePerToken MOR wei per token, not zero.
    /// @param capacity Concurrent sessions, not zero.
    function updateBid(bytes32 modelId, uint256 pricePerToken, uint256 capacity) external;

    /// @notice Deletes the caller's bid.
    /// @param modelId The model.
    function deleteBid(bytes32 modelId) external;
}
