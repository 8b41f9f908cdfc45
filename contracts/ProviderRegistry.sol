// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IProviderRegistry} from "./interfaces/IProviderRegistry.sol";
import {Messages} from "./libraries/Messages.sol";
import {ModelMerkle} from "./libraries/ModelMerkle.sol";

/// @title ProviderRegistry
/// @notice Providers and their locked stakes, the temporary whitelist, models, model claims and bids.
contract ProviderRegistry is IProviderRegistry, Ownable2Step, EIP712 {
    using SafeERC20 for IERC20;

    /*//////////////////////////////////////////////////////////////
                               CONSTANTS
    //////////////////////////////////////////////////////////////*/

    uint256 internal constant _MAX_ENDPOINT_LENGTH = 256;

    uint256 internal constant _MAX_NAME_LENGTH = 128;

    /// @inheritdoc IProviderRegistry
    IERC20 public immutable mor;

    /// @inheritdoc IProviderRegistry
    uint256 public immutable COOLDOWN;

    /*//////////////////////////////////////////////////////////////
                                STORAGE
    //////////////////////////////////////////////////////////////*/

    /// @dev One slot. The whitelist flag lives here so that registering a whitelisted address rewrites a
    /// used slot instead of filling a fresh one.
    struct ProviderState {
        uint96 stake;
        uint40 registeredAt;
        uint40 unlockAt;
        ProviderStatus status;
        bool whitelisted;
        bool listed;
    }

    /// @dev One slot.
    struct ModelState {
        address creator;
        uint64 chunkCount;
        uint32 registeredAt;
    }

    /// @dev One slot per (model, provider): the model claim and the bid share it, so posting a bid on a
    /// claimed model rewrites a used slot. The indexes locate the pair in `_modelBidders` and `_providerBids`.
    struct Listing {
        bool claimed;
        bool active;
        uint32 modelIndex;
        uint32 providerIndex;
        uint64 capacity;
        uint112 pricePerToken;
    }

    /// @dev `_minStake` and `_whitelistActive` share a slot: registration reads both.
    uint96 internal _minStake;

    bool internal _whitelistActive;

    mapping(address provider => ProviderState) internal _providers;

    mapping(address provider => string) internal _endpoints;

    address[] internal _providerList;

    mapping(bytes32 modelId => ModelState) internal _models;

    mapping(bytes32 modelId => bytes32) internal _modelRoots;

    mapping(bytes32 modelId => string) internal _modelNames;

    /// @dev Its own slot: `ModelState` is full (20 + 8 + 4 bytes), and only `getModel` reads the format, so the
    /// views that check a model (claims, bids, chunk proofs) load no more than before.
    mapping(bytes32 modelId => bytes16) internal _modelFormats;

    bytes32[] internal _modelList;

    mapping(bytes32 modelId => mapping(address provider => Listing)) internal _listings;

    mapping(bytes32 modelId => address[]) internal _modelBidders;

    mapping(address provider => bytes32[]) internal _providerBids;

    /*//////////////////////////////////////////////////////////////
                              CONSTRUCTOR
    //////////////////////////////////////////////////////////////*/

    /// @param owner_ The account that runs the whitelist and sets the minimum stake.
    /// @param mor_ The MOR token.
    /// @param minStake_ The minimum stake to register, in MOR wei; not zero.
    /// @param cooldown How long a deregistered provider's stake stays locked, in seconds.
    constructor(address owner_, IERC20 mor_, uint256 minStake_, uint256 cooldown)
        Ownable(owner_)
        EIP712(Messages.DOMAIN_NAME, Messages.DOMAIN_VERSION)
    {
        if (address(mor_) == address(0)) revert ProviderRegistryZeroAddress();
        if (minStake_ == 0) revert ProviderRegistryZeroMinStake();
        if (minStake_ > type(uint96).max) revert ProviderRegistryStakeTooLarge(minStake_);
        mor = mor_;
        COOLDOWN = cooldown;
        _minStake = uint96(minStake_);
        _whitelistActive = true;
        emit MinStakeSet(minStake_);
    }

    /*//////////////////////////////////////////////////////////////
                                 VIEWS
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function minStake() external view returns (uint256) {
        return _minStake;
    }

    /// @inheritdoc IProviderRegistry
    function whitelistActive() external view returns (bool) {
        return _whitelistActive;
    }

    /// @inheritdoc IProviderRegistry
    function isWhitelisted(address provider) external view returns (bool) {
        return !_whitelistActive || _providers[provider].whitelisted;
    }

    /// @inheritdoc IProviderRegistry
    function getProvider(address provider) public view returns (Provider memory) {
        ProviderState memory p = _providers[provider];
        return Provider({
            provider: provider,
            endpoint: _endpoints[provider],
            stake: p.stake,
            registeredAt: p.registeredAt,
            unlockAt: p.unlockAt,
            status: p.status,
            bidCount: _providerBids[provider].length
        });
    }

    /// @inheritdoc IProviderRegistry
    function providerCount() external view returns (uint256) {
        return _providerList.length;
    }

    /// @inheritdoc IProviderRegistry
    function getProviders(uint256 offset, uint256 limit) external view returns (Provider[] memory page) {
        (uint256 start, uint256 end) = _page(_providerList.length, offset, limit);
        page = new Provider[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = getProvider(_providerList[i]);
        }
    }

    /// @inheritdoc IProviderRegistry
    function computeModelId(address creator, bytes32 merkleRoot, string calldata name)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(creator, merkleRoot, keccak256(bytes(name))));
    }

    /// @inheritdoc IProviderRegistry
    function getModel(bytes32 modelId) public view returns (Model memory) {
        ModelState memory m = _requireModel(modelId);
        return Model({
            modelId: modelId,
            creator: m.creator,
            merkleRoot: _modelRoots[modelId],
            chunkCount: m.chunkCount,
            registeredAt: m.registeredAt,
            format: _modelFormats[modelId],
            name: _modelNames[modelId]
        });
    }

    /// @inheritdoc IProviderRegistry
    function modelCount() external view returns (uint256) {
        return _modelList.length;
    }

    /// @inheritdoc IProviderRegistry
    function getModels(uint256 offset, uint256 limit) external view returns (Model[] memory page) {
        (uint256 start, uint256 end) = _page(_modelList.length, offset, limit);
        page = new Model[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = getModel(_modelList[i]);
        }
    }

    /// @inheritdoc IProviderRegistry
    function verifyModelChunk(bytes32 modelId, uint256 index, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        ModelState memory m = _requireModel(modelId);
        return ModelMerkle.verifyChunk(_modelRoots[modelId], index, m.chunkCount, leaf, proof);
    }

    /// @inheritdoc IProviderRegistry
    function hasModelClaim(address provider, bytes32 modelId) external view returns (bool) {
        return _listings[modelId][provider].claimed;
    }

    /// @inheritdoc IProviderRegistry
    function getBid(address provider, bytes32 modelId) public view returns (Bid memory bid) {
        Listing memory listing = _listings[modelId][provider];
        if (!listing.active) return bid;
        return Bid({
            provider: provider,
            modelId: modelId,
            pricePerToken: listing.pricePerToken,
            capacity: listing.capacity
        });
    }

    /// @inheritdoc IProviderRegistry
    function modelBidCount(bytes32 modelId) external view returns (uint256) {
        return _modelBidders[modelId].length;
    }

    /// @inheritdoc IProviderRegistry
    function getBidsForModel(bytes32 modelId, uint256 offset, uint256 limit)
        external
        view
        returns (Bid[] memory page)
    {
        address[] storage bidders = _modelBidders[modelId];
        (uint256 start, uint256 end) = _page(bidders.length, offset, limit);
        page = new Bid[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = getBid(bidders[i], modelId);
        }
    }

    /// @inheritdoc IProviderRegistry
    function getBidsOfProvider(address provider, uint256 offset, uint256 limit)
        external
        view
        returns (Bid[] memory page)
    {
        bytes32[] storage modelIds = _providerBids[provider];
        (uint256 start, uint256 end) = _page(modelIds.length, offset, limit);
        page = new Bid[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = getBid(provider, modelIds[i]);
        }
    }

    /// @inheritdoc IProviderRegistry
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IProviderRegistry
    function hashTypedData(bytes32 structHash) external view returns (bytes32) {
        return _hashTypedDataV4(structHash);
    }

    /// @inheritdoc IProviderRegistry
    function hashModelClaim(address provider, bytes32 modelId) public view returns (bytes32) {
        _requireModel(modelId);
        return _hashTypedDataV4(
            Messages.hash(
                Messages.ModelClaim({provider: provider, modelId: modelId, merkleRoot: _modelRoots[modelId]})
            )
        );
    }

    /*//////////////////////////////////////////////////////////////
                             STATE-CHANGING
    //////////////////////////////////////////////////////////////*/

    /// @inheritdoc IProviderRegistry
    function register(string calldata endpoint, uint256 stake) external {
        ProviderState memory p = _providers[msg.sender];
        if (p.status != ProviderStatus.None) revert ProviderRegistryAlreadyRegistered(msg.sender);
        if (_whitelistActive && !p.whitelisted) revert ProviderRegistryNotWhitelisted(msg.sender);
        if (stake < _minStake) revert ProviderRegistryStakeTooLow(stake, _minStake);
        if (stake > type(uint96).max) revert ProviderRegistryStakeTooLarge(stake);
        _checkEndpoint(endpoint);
        if (!p.listed) {
            p.listed = true;
            _providerList.push(msg.sender);
        }
        p.stake = uint96(stake);
        p.registeredAt = uint40(block.timestamp);
        p.unlockAt = 0;
        p.status = ProviderStatus.Active;
        _providers[msg.sender] = p;
        _endpoints[msg.sender] = endpoint;
        emit ProviderRegistered(msg.sender, endpoint, stake);
        mor.safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @inheritdoc IProviderRegistry
    function updateEndpoint(string calldata endpoint) external {
        _requireActive(msg.sender);
        _checkEndpoint(endpoint);
        _endpoints[msg.sender] = endpoint;
        emit EndpointUpdated(msg.sender, endpoint);
    }

    /// @inheritdoc IProviderRegistry
    function deregister() external {
        ProviderState storage p = _requireActive(msg.sender);
        uint256 bidCount = _providerBids[msg.sender].length;
        if (bidCount != 0) revert ProviderRegistryActiveBids(msg.sender, bidCount);
        uint256 unlockAt = block.timestamp + COOLDOWN;
        p.status = ProviderStatus.Deregistered;
        p.unlockAt = uint40(unlockAt);
        emit ProviderDeregistered(msg.sender, unlockAt);
    }

    /// @inheritdoc IProviderRegistry
    function withdrawStake() external returns (uint256 amount) {
        ProviderState storage p = _providers[msg.sender];
        if (p.status != ProviderStatus.Deregistered) revert ProviderRegistryNotDeregistered(msg.sender);
        if (block.timestamp < p.unlockAt) revert ProviderRegistryStakeLocked(p.unlockAt);
        amount = p.stake;
        p.stake = 0;
        p.registeredAt = 0;
        p.unlockAt = 0;
        p.status = ProviderStatus.None;
        emit StakeWithdrawn(msg.sender, amount);
        mor.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IProviderRegistry
    function addToWhitelist(address provider) external onlyOwner {
        if (!_whitelistActive) revert ProviderRegistryWhitelistDisabled();
        if (provider == address(0)) revert ProviderRegistryZeroAddress();
        _providers[provider].whitelisted = true;
        emit WhitelistAdded(provider);
    }

    /// @inheritdoc IProviderRegistry
    function removeFromWhitelist(address provider) external onlyOwner {
        if (!_whitelistActive) revert ProviderRegistryWhitelistDisabled();
        _providers[provider].whitelisted = false;
        emit WhitelistRemoved(provider);
    }

    /// @inheritdoc IProviderRegistry
    function disableWhitelist() external onlyOwner {
        if (!_whitelistActive) revert ProviderRegistryWhitelistDisabled();
        _whitelistActive = false;
        emit WhitelistDisabled();
    }

    /// @inheritdoc IProviderRegistry
    function setMinStake(uint256 minStake_) external onlyOwner {
        if (minStake_ == 0) revert ProviderRegistryZeroMinStake();
        if (minStake_ > type(uint96).max) revert ProviderRegistryStakeTooLarge(minStake_);
        _minStake = uint96(minStake_);
        emit MinStakeSet(minStake_);
    }

    /// @inheritdoc IProviderRegistry
    function registerModel(bytes32 merkleRoot, uint256 chunkCount, bytes16 format, string calldata name)
        external
        returns (bytes32 modelId)
    {
        uint256 nameLength = bytes(name).length;
        if (
            merkleRoot == bytes32(0) || chunkCount == 0 || chunkCount > type(uint64).max || nameLength == 0
                || nameLength > _MAX_NAME_LENGTH
        ) {
            revert ProviderRegistryInvalidModel(merkleRoot, chunkCount, nameLength);
        }
        if (!_isFormatLabel(format)) revert ProviderRegistryInvalidFormat(format);
        modelId = computeModelId(msg.sender, merkleRoot, name);
        if (_models[modelId].creator != address(0)) revert ProviderRegistryModelExists(modelId);
        _models[modelId] = ModelState({
            creator: msg.sender, chunkCount: uint64(chunkCount), registeredAt: uint32(block.timestamp)
        });
        _modelRoots[modelId] = merkleRoot;
        _modelNames[modelId] = name;
        _modelFormats[modelId] = format;
        _modelList.push(modelId);
        emit ModelRegistered(modelId, msg.sender, merkleRoot, chunkCount, format, name);
    }

    /// @inheritdoc IProviderRegistry
    function claimModel(address provider, bytes32 modelId, bytes calldata signature) external {
        _requireActive(provider);
        bytes32 digest = hashModelClaim(provider, modelId);
        if (!SignatureChecker.isValidSignatureNowCalldata(provider, digest, signature)) {
            revert ProviderRegistryInvalidSignature(provider, modelId);
        }
        _listings[modelId][provider].claimed = true;
        emit ModelClaimed(provider, modelId, _modelRoots[modelId]);
    }

    /// @inheritdoc IProviderRegistry
    function postBid(bytes32 modelId, uint256 pricePerToken, uint256 capacity) external {
        _requireActive(msg.sender);
        _checkBid(pricePerToken, capacity);
        Listing memory listing = _listings[modelId][msg.sender];
        if (!listing.claimed) revert ProviderRegistryModelNotClaimed(msg.sender, modelId);
        if (listing.active) revert ProviderRegistryBidExists(msg.sender, modelId);
        // Indexes fit 32 bits: each array holds at most one entry per provider or per model, and
        // 4 billion of either is out of reach of any chain's gas.
        _listings[modelId][msg.sender] = Listing({
            claimed: true,
            active: true,
            modelIndex: uint32(_modelBidders[modelId].length),
            providerIndex: uint32(_providerBids[msg.sender].length),
            capacity: uint64(capacity),
            pricePerToken: uint112(pricePerToken)
        });
        _modelBidders[modelId].push(msg.sender);
        _providerBids[msg.sender].push(modelId);
        emit BidPosted(msg.sender, modelId, pricePerToken, capacity);
    }

    /// @inheritdoc IProviderRegistry
    function updateBid(bytes32 modelId, uint256 pricePerToken, uint256 capacity) external {
        _checkBid(pricePerToken, capacity);
        Listing storage listing = _listings[modelId][msg.sender];
        if (!listing.active) revert ProviderRegistryNoBid(msg.sender, modelId);
        listing.pricePerToken = uint112(pricePerToken);
        listing.capacity = uint64(capacity);
        emit BidUpdated(msg.sender, modelId, pricePerToken, capacity);
    }

    /// @inheritdoc IProviderRegistry
    function deleteBid(bytes32 modelId) external {
        Listing memory listing = _listings[modelId][msg.sender];
        if (!listing.active) revert ProviderRegistryNoBid(msg.sender, modelId);

        // Swap-and-pop from the model's bidders; the moved bidder's listing learns its new index.
        address[] storage bidders = _modelBidders[modelId];
        uint256 last = bidders.length - 1;
        if (listing.modelIndex != last) {
            address moved = bidders[last];
            bidders[listing.modelIndex] = moved;
            _listings[modelId][moved].modelIndex = listing.modelIndex;
        }
        bidders.pop();

        // The same for the provider's bids.
        bytes32[] storage bids = _providerBids[msg.sender];
        last = bids.length - 1;
        if (listing.providerIndex != last) {
            bytes32 movedModel = bids[last];
            bids[listing.providerIndex] = movedModel;
            _listings[movedModel][msg.sender].providerIndex = listing.providerIndex;
        }
        bids.pop();

        _listings[modelId][msg.sender] = Listing({
            claimed: true, active: false, modelIndex: 0, providerIndex: 0, capacity: 0, pricePerToken: 0
        });
        emit BidDeleted(msg.sender, modelId);
    }

    /*//////////////////////////////////////////////////////////////
                                INTERNAL
    //////////////////////////////////////////////////////////////*/

    function _requireActive(address provider) internal view returns (ProviderState storage p) {
        p = _providers[provider];
        if (p.status != ProviderStatus.Active) revert ProviderRegistryNotRegistered(provider);
    }

    function _requireModel(bytes32 modelId) internal view returns (ModelState memory m) {
        m = _models[modelId];
        if (m.creator == address(0)) revert ProviderRegistryUnknownModel(modelId);
    }

    function _checkEndpoint(string calldata endpoint) internal pure {
        uint256 length = bytes(endpoint).length;
        if (length == 0 || length > _MAX_ENDPOINT_LENGTH) revert ProviderRegistryInvalidEndpoint(length);
    }

    /// @dev A label: one or more of `a-z`, `0-9` from the left, then only zero bytes. One spelling per format,
    /// so `"GGUF"` and `"gguf "` cannot pass for another format than `"gguf"`.
    function _isFormatLabel(bytes16 format) internal pure returns (bool) {
        bool ended = false;
        for (uint256 i; i < 16; ++i) {
            bytes1 c = format[i];
            if (c == 0) {
                ended = true;
            } else if (ended || !((c >= "a" && c <= "z") || (c >= "0" && c <= "9"))) {
                return false;
            }
        }
        return format[0] != 0;
    }

    function _checkBid(uint256 pricePerToken, uint256 capacity) internal pure {
        if (
            pricePerToken == 0 || capacity == 0 || pricePerToken > type(uint112).max
                || capacity > type(uint64).max
        ) {
            revert ProviderRegistryInvalidBid(pricePerToken, capacity);
        }
    }

    /// @dev The [start, end) range of a page over `total` items.
    function _page(uint256 total, uint256 offset, uint256 limit) internal pure returns (uint256, uint256) {
        if (offset >= total) return (total, total);
        uint256 end = total - offset > limit ? offset + limit : total;
        return (offset, end);
    }
}
