// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {ProviderRegistry} from "../../../contracts/ProviderRegistry.sol";
import {IProviderRegistry} from "../../../contracts/interfaces/IProviderRegistry.sol";
import {ModelMerkle} from "../../../contracts/libraries/ModelMerkle.sol";
import {Base} from "../../Base.t.sol";
import {ERC1271Wallet} from "../../mocks/ERC1271Wallet.sol";
import {MessageVectors} from "../../utils/MessageVectors.sol";

contract ProviderRegistry_Unit_Test is Base, MessageVectors {
    string internal constant PROVIDER_ENDPOINT = "https://provider.example:8443/v1";

    // The model claim `test_HashModelClaim` hashes, computed with cast alone (the recipe of `MessageVectors`):
    //   P=$(cast wallet address --private-key $(cast keccak provider))    # makeAddr("provider")
    //   A=$(cast wallet address --private-key $(cast keccak alice))       # makeAddr("alice")
    //   R=$(cast keccak weights)
    //   M=$(cast keccak $(cast abi-encode "f(address,bytes32,bytes32)" $A $R $(cast keccak llama-3-8b)))
    //   t=$(cast keccak "ModelClaim(address provider,bytes32 modelId,bytes32 merkleRoot)")
    //   S=$(cast keccak $(cast abi-encode "f(bytes32,address,bytes32,bytes32)" $t $P $M $R))
    //   cast keccak $(cast concat-hex 0x1901 <REGISTRY_DOMAIN> $S)
    address internal constant CLAIM_PROVIDER = 0x9B78803558F9Ea56F4f0a966322C8dD9B2fBebc0; // $P
    bytes32 internal constant CLAIM_MODEL_ID =
        0x6ab866ff1b0cbaa79dd4618a19b8f13a1b908f2db72c859972e22a60e4232ea7; // $M
    bytes32 internal constant MODEL_CLAIM_HASH_PINNED =
        0x14fa8ee112b0e29f5218f20baa879618095234903ef07887380602cb7ceaf282; // $S
    bytes32 internal constant MODEL_CLAIM_DIGEST_PINNED =
        0xe844533963824ed11523fae52c0087778c4e51c2a4543bb7c29a743040f94308;

    /*//////////////////////////////////////////////////////////////
                          CONSTRUCTOR / ADMIN
    //////////////////////////////////////////////////////////////*/

    function test_Constructor() external view {
        assertEq(address(registry.mor()), address(mor));
        assertEq(registry.COOLDOWN(), COOLDOWN);
        assertEq(registry.minStake(), MIN_STAKE);
        assertTrue(registry.whitelistActive());
        assertEq(registry.owner(), owner);
    }

    function test_RevertWhen_ConstructorZeroMor() external {
        vm.expectRevert(IProviderRegistry.ProviderRegistryZeroAddress.selector);
        new ProviderRegistry(owner, IERC20(address(0)), 1, 1);
    }

    function test_RevertWhen_ConstructorMinStakeZero() external {
        vm.expectRevert(IProviderRegistry.ProviderRegistryZeroMinStake.selector);
        new ProviderRegistry(owner, mor, 0, 1);
    }

    function test_RevertWhen_ConstructorMinStakeTooLarge() external {
        uint256 big = uint256(type(uint96).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryStakeTooLarge.selector, big));
        new ProviderRegistry(owner, mor, big, 1);
    }

    function test_Whitelist() external {
        vm.startPrank(owner);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.WhitelistAdded(eve);
        registry.addToWhitelist(eve);
        assertTrue(registry.isWhitelisted(eve));
        vm.expectEmit(address(registry));
        emit IProviderRegistry.WhitelistRemoved(eve);
        registry.removeFromWhitelist(eve);
        assertFalse(registry.isWhitelisted(eve));
        vm.expectEmit(address(registry));
        emit IProviderRegistry.WhitelistDisabled();
        registry.disableWhitelist();
        vm.stopPrank();
        assertFalse(registry.whitelistActive());
        assertTrue(registry.isWhitelisted(eve));
    }

    function test_RevertWhen_WhitelistChangedAfterDisabled() external {
        vm.startPrank(owner);
        registry.disableWhitelist();
        vm.expectRevert(IProviderRegistry.ProviderRegistryWhitelistDisabled.selector);
        registry.addToWhitelist(eve);
        vm.expectRevert(IProviderRegistry.ProviderRegistryWhitelistDisabled.selector);
        registry.removeFromWhitelist(provider);
        vm.expectRevert(IProviderRegistry.ProviderRegistryWhitelistDisabled.selector);
        registry.disableWhitelist();
        vm.stopPrank();
    }

    function test_RevertWhen_WhitelistAddZero() external {
        vm.expectRevert(IProviderRegistry.ProviderRegistryZeroAddress.selector);
        vm.prank(owner);
        registry.addToWhitelist(address(0));
    }

    function test_RevertWhen_AdminNotOwner() external {
        vm.startPrank(eve);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        registry.addToWhitelist(eve);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        registry.removeFromWhitelist(eve);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        registry.disableWhitelist();
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, eve));
        registry.setMinStake(1);
        vm.stopPrank();
    }

    function testFuzz_SetMinStake(uint256 minStake) external {
        minStake = bound(minStake, 1, type(uint96).max);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.MinStakeSet(minStake);
        vm.prank(owner);
        registry.setMinStake(minStake);
        assertEq(registry.minStake(), minStake);
    }

    function test_RevertWhen_SetMinStakeZero() external {
        vm.expectRevert(IProviderRegistry.ProviderRegistryZeroMinStake.selector);
        vm.prank(owner);
        registry.setMinStake(0);
        assertEq(registry.minStake(), MIN_STAKE);
    }

    function test_RevertWhen_SetMinStakeTooLarge() external {
        uint256 big = uint256(type(uint96).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryStakeTooLarge.selector, big));
        vm.prank(owner);
        registry.setMinStake(big);
    }

    /*//////////////////////////////////////////////////////////////
                               PROVIDERS
    //////////////////////////////////////////////////////////////*/

    function test_Register() external {
        vm.expectEmit(address(registry));
        emit IProviderRegistry.ProviderRegistered(provider, PROVIDER_ENDPOINT, 20e18);
        vm.prank(provider);
        registry.register(PROVIDER_ENDPOINT, 20e18);
        IProviderRegistry.Provider memory p = registry.getProvider(provider);
        assertEq(p.provider, provider);
        assertEq(p.endpoint, PROVIDER_ENDPOINT);
        assertEq(p.stake, 20e18);
        assertEq(p.registeredAt, block.timestamp);
        assertEq(uint8(p.status), uint8(IProviderRegistry.ProviderStatus.Active));
        assertEq(registry.providerCount(), 1);
        assertEq(mor.balanceOf(address(registry)), 20e18);
    }

    function testFuzz_Register(string memory endpoint, uint256 stake) external {
        vm.assume(bytes(endpoint).length > 0 && bytes(endpoint).length <= 256);
        stake = bound(stake, MIN_STAKE, ACTOR_MOR);
        vm.prank(provider);
        registry.register(endpoint, stake);
        assertEq(registry.getProvider(provider).endpoint, endpoint);
        assertEq(registry.getProvider(provider).stake, stake);
    }

    function test_RevertWhen_RegisterNotWhitelisted() external {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNotWhitelisted.selector, eve)
        );
        vm.prank(eve);
        registry.register(PROVIDER_ENDPOINT, MIN_STAKE);
    }

    function test_Register_AfterWhitelistDisabled() external {
        vm.prank(owner);
        registry.disableWhitelist();
        _registerProvider(eve);
        assertEq(uint8(registry.getProvider(eve).status), 1);
    }

    function test_RevertWhen_RegisterTwice() external {
        _registerProvider(provider);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryAlreadyRegistered.selector, provider)
        );
        _registerProvider(provider);
    }

    function test_RevertWhen_RegisterStakeTooLow() external {
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistryStakeTooLow.selector, MIN_STAKE - 1, MIN_STAKE
            )
        );
        vm.prank(provider);
        registry.register(PROVIDER_ENDPOINT, MIN_STAKE - 1);
    }

    function test_RevertWhen_RegisterStakeTooLarge() external {
        uint256 big = uint256(type(uint96).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryStakeTooLarge.selector, big));
        vm.prank(provider);
        registry.register(PROVIDER_ENDPOINT, big);
    }

    function test_RevertWhen_RegisterEndpointEmpty() external {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidEndpoint.selector, 0));
        vm.prank(provider);
        registry.register("", MIN_STAKE);
    }

    function test_RevertWhen_RegisterEndpointTooLong() external {
        string memory long = string(new bytes(257));
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidEndpoint.selector, 257)
        );
        vm.prank(provider);
        registry.register(long, MIN_STAKE);
    }

    function test_UpdateEndpoint() external {
        _registerProvider(provider);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.EndpointUpdated(provider, "https://new.example");
        vm.prank(provider);
        registry.updateEndpoint("https://new.example");
        assertEq(registry.getProvider(provider).endpoint, "https://new.example");
    }

    function test_RevertWhen_UpdateEndpointNotRegistered() external {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNotRegistered.selector, eve));
        vm.prank(eve);
        registry.updateEndpoint("x");
    }

    function test_DeregisterAndWithdraw() external {
        _registerProvider(provider);
        uint256 before = mor.balanceOf(provider);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.ProviderDeregistered(provider, block.timestamp + COOLDOWN);
        vm.prank(provider);
        registry.deregister();
        assertEq(uint8(registry.getProvider(provider).status), 2);

        vm.warp(block.timestamp + COOLDOWN - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistryStakeLocked.selector, block.timestamp + 1
            )
        );
        vm.prank(provider);
        registry.withdrawStake();

        vm.warp(block.timestamp + 1);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.StakeWithdrawn(provider, MIN_STAKE);
        vm.prank(provider);
        assertEq(registry.withdrawStake(), MIN_STAKE);
        assertEq(mor.balanceOf(provider) - before, MIN_STAKE);
        assertEq(uint8(registry.getProvider(provider).status), 0);

        // The address may register again, and is listed once.
        _registerProvider(provider);
        assertEq(registry.providerCount(), 1);
    }

    function test_RevertWhen_DeregisterWithBids() external {
        bytes32 modelId = _bidSetup();
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryActiveBids.selector, provider, 1)
        );
        vm.prank(provider);
        registry.deregister();
        modelId;
    }

    function test_RevertWhen_DeregisterNotRegistered() external {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNotRegistered.selector, eve));
        vm.prank(eve);
        registry.deregister();
    }

    function test_RevertWhen_WithdrawStakeNotDeregistered() external {
        _registerProvider(provider);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNotDeregistered.selector, provider)
        );
        vm.prank(provider);
        registry.withdrawStake();
    }

    function test_GetProviders_Paginates() external {
        _registerProvider(provider);
        _registerProvider(provider2);
        IProviderRegistry.Provider[] memory page = registry.getProviders(0, 1);
        assertEq(page.length, 1);
        assertEq(page[0].provider, provider);
        page = registry.getProviders(1, 10);
        assertEq(page.length, 1);
        assertEq(page[0].provider, provider2);
        assertEq(registry.getProviders(5, 10).length, 0);
    }

    /*//////////////////////////////////////////////////////////////
                                 MODELS
    //////////////////////////////////////////////////////////////*/

    function test_RegisterModel() external {
        bytes32 expected = keccak256(abi.encode(alice, keccak256("weights"), keccak256("llama-3-8b")));
        vm.expectEmit(address(registry));
        emit IProviderRegistry.ModelRegistered(expected, alice, keccak256("weights"), 3, "gguf", "llama-3-8b");
        bytes32 modelId = _registerModel();
        assertEq(modelId, expected);
        assertEq(registry.computeModelId(alice, keccak256("weights"), "llama-3-8b"), expected);
        IProviderRegistry.Model memory m = registry.getModel(modelId);
        assertEq(m.creator, alice);
        assertEq(m.merkleRoot, keccak256("weights"));
        assertEq(m.chunkCount, 3);
        assertEq(m.format, bytes16("gguf"));
        assertEq(m.name, "llama-3-8b");
        assertEq(registry.modelCount(), 1);
        assertEq(registry.getModels(0, 5).length, 1);
    }

    function testFuzz_RegisterModel_IdsCannotBeSquatted(
        address a,
        address b,
        bytes32 root,
        string memory name
    ) external {
        vm.assume(a != b && root != 0 && bytes(name).length > 0 && bytes(name).length <= 128);
        vm.prank(a);
        bytes32 idA = registry.registerModel(root, 1, "gguf", name);
        // Someone else registering the same root and name gets another id: no squatting, no front-running.
        vm.prank(b);
        bytes32 idB = registry.registerModel(root, 1, "gguf", name);
        assertTrue(idA != idB);
    }

    function test_RevertWhen_RegisterModelExists() external {
        bytes32 modelId = _registerModel();
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryModelExists.selector, modelId)
        );
        _registerModel();
    }

    function test_RevertWhen_RegisterModelInvalid() external {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidModel.selector, bytes32(0), 1, 1)
        );
        registry.registerModel(0, 1, "gguf", "x");
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistryInvalidModel.selector, bytes32("r"), 0, 1
            )
        );
        registry.registerModel("r", 0, "gguf", "x");
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistryInvalidModel.selector, bytes32("r"), 1, 0
            )
        );
        registry.registerModel("r", 1, "gguf", "");
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistryInvalidModel.selector, bytes32("r"), 1, 129
            )
        );
        registry.registerModel("r", 1, "gguf", string(new bytes(129)));
    }

    function test_RevertWhen_RegisterModelEmptyFormat() external {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidFormat.selector, bytes16(0))
        );
        registry.registerModel("r", 1, bytes16(0), "x");
    }

    /// One spelling per format: upper case, a space, a leading zero byte or a gap are not labels.
    function test_RevertWhen_RegisterModelFormatNotALabel() external {
        bytes16[4] memory bad = [
            bytes16("GGUF"),
            bytes16("gguf "),
            bytes16(hex"0067677566"),
            bytes16(hex"676700") | bytes16(hex"000000756600")
        ];
        for (uint256 i; i < bad.length; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidFormat.selector, bad[i])
            );
            registry.registerModel("r", 1, bad[i], "x");
        }
    }

    function test_RegisterModel_FormatOfSixteenBytes() external {
        bytes32 modelId = registry.registerModel("r", 1, "0123456789abcdef", "x");
        assertEq(registry.getModel(modelId).format, bytes16("0123456789abcdef"));
        assertEq(registry.getModels(0, 1)[0].format, bytes16("0123456789abcdef"));
    }

    function test_RevertWhen_GetModelUnknown() external {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryUnknownModel.selector, bytes32("x"))
        );
        registry.getModel("x");
    }

    function test_VerifyModelChunk() external {
        bytes32[] memory leaves = new bytes32[](3);
        for (uint256 i; i < 3; ++i) {
            leaves[i] = keccak256(abi.encodePacked("chunk", i));
        }
        bytes32 l0 = leaves[0];
        bytes32 l1 = leaves[1];
        bytes32 l2 = leaves[2];
        bytes32 root = ModelMerkle.computeRoot(leaves);
        vm.prank(alice);
        bytes32 modelId = registry.registerModel(root, 3, "gguf", "m");
        bytes32[] memory proof = new bytes32[](2);
        proof[0] = l1;
        proof[1] = l2;
        assertTrue(registry.verifyModelChunk(modelId, 0, l0, proof));
        assertFalse(registry.verifyModelChunk(modelId, 1, l0, proof));
        bytes32[] memory proof2 = new bytes32[](1);
        proof2[0] = keccak256(abi.encodePacked(l0, l1));
        assertTrue(registry.verifyModelChunk(modelId, 2, l2, proof2)); // promoted odd leaf
    }

    function test_ClaimModel() external {
        _registerProvider(provider);
        bytes32 modelId = _registerModel();
        bytes memory sig = _signModelClaim(providerKey, provider, modelId);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.ModelClaimed(provider, modelId, keccak256("weights"));
        vm.prank(eve); // anyone may relay it
        registry.claimModel(provider, modelId, sig);
        assertTrue(registry.hasModelClaim(provider, modelId));
    }

    function test_ClaimModel_ContractWallet() external {
        ERC1271Wallet wallet = new ERC1271Wallet(provider);
        vm.prank(owner);
        registry.addToWhitelist(address(wallet));
        vm.prank(owner);
        mor.mint(address(wallet), MIN_STAKE);
        vm.startPrank(address(wallet));
        mor.approve(address(registry), MIN_STAKE);
        registry.register(PROVIDER_ENDPOINT, MIN_STAKE);
        vm.stopPrank();
        bytes32 modelId = _registerModel();
        bytes memory sig = _signModelClaim(providerKey, address(wallet), modelId);
        registry.claimModel(address(wallet), modelId, sig);
        assertTrue(registry.hasModelClaim(address(wallet), modelId));
    }

    function test_RevertWhen_ClaimModelBadSignature() external {
        _registerProvider(provider);
        bytes32 modelId = _registerModel();
        bytes memory sig = _signModelClaim(provider2Key, provider, modelId);
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistryInvalidSignature.selector, provider, modelId
            )
        );
        registry.claimModel(provider, modelId, sig);
    }

    function test_RevertWhen_ClaimModelNotRegistered() external {
        bytes32 modelId = _registerModel();
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNotRegistered.selector, provider)
        );
        registry.claimModel(provider, modelId, "");
    }

    function test_RevertWhen_ClaimModelUnknown() external {
        _registerProvider(provider);
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryUnknownModel.selector, bytes32("x"))
        );
        registry.claimModel(provider, "x", "");
    }

    /*//////////////////////////////////////////////////////////////
                                  BIDS
    //////////////////////////////////////////////////////////////*/

    function _bidSetup() internal returns (bytes32 modelId) {
        _registerProvider(provider);
        modelId = _registerModel();
        _claimModel(providerKey, provider, modelId);
        vm.prank(provider);
        registry.postBid(modelId, 1e11, 8);
    }

    function test_PostBid() external {
        _registerProvider(provider);
        bytes32 modelId = _registerModel();
        _claimModel(providerKey, provider, modelId);
        vm.expectEmit(address(registry));
        emit IProviderRegistry.BidPosted(provider, modelId, 1e11, 8);
        vm.prank(provider);
        registry.postBid(modelId, 1e11, 8);
        IProviderRegistry.Bid memory bid = registry.getBid(provider, modelId);
        assertEq(bid.provider, provider);
        assertEq(bid.modelId, modelId);
        assertEq(bid.pricePerToken, 1e11);
        assertEq(bid.capacity, 8);
        assertEq(registry.modelBidCount(modelId), 1);
        assertEq(registry.getBidsForModel(modelId, 0, 10).length, 1);
        assertEq(registry.getBidsOfProvider(provider, 0, 10).length, 1);
        assertEq(registry.getProvider(provider).bidCount, 1);
    }

    function testFuzz_PostBid(uint256 price, uint256 capacity) external {
        price = bound(price, 1, type(uint112).max);
        capacity = bound(capacity, 1, type(uint64).max);
        _registerProvider(provider);
        bytes32 modelId = _registerModel();
        _claimModel(providerKey, provider, modelId);
        vm.prank(provider);
        registry.postBid(modelId, price, capacity);
        assertEq(registry.getBid(provider, modelId).pricePerToken, price);
        assertEq(registry.getBid(provider, modelId).capacity, capacity);
    }

    function test_RevertWhen_PostBidNotClaimed() external {
        _registerProvider(provider);
        bytes32 modelId = _registerModel();
        vm.expectRevert(
            abi.encodeWithSelector(
                IProviderRegistry.ProviderRegistryModelNotClaimed.selector, provider, modelId
            )
        );
        vm.prank(provider);
        registry.postBid(modelId, 1, 1);
    }

    function test_RevertWhen_PostBidTwice() external {
        bytes32 modelId = _bidSetup();
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryBidExists.selector, provider, modelId)
        );
        vm.prank(provider);
        registry.postBid(modelId, 1, 1);
    }

    function test_RevertWhen_PostBidNotRegistered() external {
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNotRegistered.selector, eve));
        vm.prank(eve);
        registry.postBid("m", 1, 1);
    }

    function test_RevertWhen_PostBidInvalid() external {
        _registerProvider(provider);
        vm.startPrank(provider);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidBid.selector, 0, 1));
        registry.postBid("m", 0, 1);
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidBid.selector, 1, 0));
        registry.postBid("m", 1, 0);
        uint256 big = uint256(type(uint112).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidBid.selector, big, 1));
        registry.postBid("m", big, 1);
        big = uint256(type(uint64).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(IProviderRegistry.ProviderRegistryInvalidBid.selector, 1, big));
        registry.postBid("m", 1, big);
        vm.stopPrank();
    }

    function test_UpdateBid() external {
        bytes32 modelId = _bidSetup();
        vm.expectEmit(address(registry));
        emit IProviderRegistry.BidUpdated(provider, modelId, 2e11, 4);
        vm.prank(provider);
        registry.updateBid(modelId, 2e11, 4);
        assertEq(registry.getBid(provider, modelId).pricePerToken, 2e11);
        assertEq(registry.getBid(provider, modelId).capacity, 4);
    }

    function testFuzz_UpdateBid(uint256 price, uint256 capacity) external {
        price = bound(price, 1, type(uint112).max);
        capacity = bound(capacity, 1, type(uint64).max);
        bytes32 modelId = _bidSetup();
        vm.prank(provider);
        registry.updateBid(modelId, price, capacity);
        assertEq(registry.getBid(provider, modelId).pricePerToken, price);
    }

    function test_RevertWhen_UpdateBidMissing() external {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNoBid.selector, provider, bytes32("m"))
        );
        vm.prank(provider);
        registry.updateBid("m", 1, 1);
    }

    function test_DeleteBid_SwapsAndPops() external {
        bytes32 modelId = _bidSetup();
        _registerProvider(provider2);
        _claimModel(provider2Key, provider2, modelId);
        vm.prank(provider2);
        registry.postBid(modelId, 2e11, 1);
        vm.prank(alice);
        bytes32 model2 = registry.registerModel(keccak256("w2"), 1, "gguf", "m2");
        _claimModel(providerKey, provider, model2);
        vm.prank(provider);
        registry.postBid(model2, 3e11, 1);

        vm.expectEmit(address(registry));
        emit IProviderRegistry.BidDeleted(provider, modelId);
        vm.prank(provider);
        registry.deleteBid(modelId);

        IProviderRegistry.Bid[] memory bids = registry.getBidsForModel(modelId, 0, 10);
        assertEq(bids.length, 1);
        assertEq(bids[0].provider, provider2);
        bids = registry.getBidsOfProvider(provider, 0, 10);
        assertEq(bids.length, 1);
        assertEq(bids[0].modelId, model2);
        assertEq(registry.getBid(provider, modelId).provider, address(0));
        assertTrue(registry.hasModelClaim(provider, modelId));
        // The moved entries still delete cleanly.
        vm.prank(provider2);
        registry.deleteBid(modelId);
        vm.prank(provider);
        registry.deleteBid(model2);
        assertEq(registry.modelBidCount(modelId), 0);
        vm.prank(provider);
        registry.deregister();
    }

    function test_RevertWhen_DeleteBidMissing() external {
        vm.expectRevert(
            abi.encodeWithSelector(IProviderRegistry.ProviderRegistryNoBid.selector, provider, bytes32("m"))
        );
        vm.prank(provider);
        registry.deleteBid("m");
    }

    /// @dev Against the fixed vectors above, computed with cast alone, on a registry deployed as `Base` deploys
    /// it but at `REGISTRY_AT` on chain 31337, where its domain is `MessageVectors.REGISTRY_DOMAIN`. Its inputs
    /// are asserted first, then the domain and the digest of the fixed struct hash, so a failure of the last
    /// assertion is the struct hash of `Messages.hash(ModelClaim)`.
    function test_HashModelClaim() external {
        vm.chainId(CHAIN_ID);
        deployCodeTo(
            "ProviderRegistry.sol:ProviderRegistry", abi.encode(owner, mor, MIN_STAKE, COOLDOWN), REGISTRY_AT
        );
        ProviderRegistry pinned = ProviderRegistry(REGISTRY_AT);
        vm.prank(alice);
        bytes32 modelId = pinned.registerModel(keccak256("weights"), 3, "gguf", "llama-3-8b");

        assertEq(provider, CLAIM_PROVIDER, "provider");
        assertEq(modelId, CLAIM_MODEL_ID, "model id");
        assertEq(pinned.domainSeparator(), REGISTRY_DOMAIN, "domain");
        assertEq(pinned.hashTypedData(MODEL_CLAIM_HASH_PINNED), MODEL_CLAIM_DIGEST_PINNED, "digest of $S");
        assertEq(pinned.hashModelClaim(provider, modelId), MODEL_CLAIM_DIGEST_PINNED, "digest");
    }
}
